"""WeChat's side of an official account: the API (access tokens, customer messages) served
beside the school (`api.py`), and a follower's messages delivered to an account's callback
URL as WeChat's servers deliver them (`follower.py`)."""
