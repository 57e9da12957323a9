"""Channels other than the REST API through which students reach jnufm: the WeChat
official account."""
