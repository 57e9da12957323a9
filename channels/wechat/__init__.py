"""The WeChat official account (公众号) through which students ask jnufm in chat.

The message protocol, as WeChat's docs define it (接入指南, 消息加解密), plus replay
protection of our own; no I/O but the replay store's:

    config.py               an account's settings and secrets (WeChatAccount)
    endpoint.py             the account's side: AccountEndpoint.verify_url, receive, reply
    simulated_platform.py   WeChat's side, for tests and the simulator (SimulatedPlatform)
    messages.py             what a follower sent (InboundMessage)
    reply_xml.py            passive replies on the wire (text, news, success)
    replay.py               ReplayGuard and the NonceStore it remembers requests in
    cipher.py, signature.py, wire.py   AES, SHA-1 signatures, safe XML
    errors.py               the protocol's error tree (WeChatError)

What a message asks and what the follower reads: commands.py, replies.py.
"""
