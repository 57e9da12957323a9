"""Students' opt-in watches: told of a change at the school before they ask.

    notices.py    what a watch tells (Notice), sealed for the outbox; kinds and channels
    kinds.py      each kind's question and how two answers differ (pure)
    store.py      watches in the database: made, listed, ended with their token
    scheduler.py  polls due watches on the school's spare capacity only
    outbox.py     delivers the outbox's messages under leases, retried, at least once
    webhook.py, email.py   the channels (WeChat's: channels/wechat/notify.py)

A poll's events are written to the outbox in the same transaction as the watch's new
state: a crash loses none; each event's key is unique, so an event is one message
whoever saw it. A first poll sets the baseline and tells nothing.
"""
