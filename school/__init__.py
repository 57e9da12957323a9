"""Async client of the school's card center (校园卡用户服务中心)."""
