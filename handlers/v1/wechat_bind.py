"""POST /v1/wechat/bind: the bind page (static/wechat-bind.html) binds a WeChat follower
to a student.

Fields (JSON or a form): `ticket` (from the page's URL fragment), `student_id`,
`password` (the card center's), optional `academic_password`. 201 {"student_id",
"bound": {"card", "academic"}, "account"}. The rules are services/wechat_followers.py's.
"""

from __future__ import annotations

from api.answers.sessions import BoundSystems, WeChatBound
from handlers.v1 import V1Handler
from services.errors import NotConfigured


class WeChatBindHandler(V1Handler):
    async def post(self) -> None:
        followers = self.deps.followers
        if followers is None:
            raise NotConfigured("WeChat is not configured here")
        fields = self.body_fields()
        binding = await followers.bind(
            fields.get("ticket", ""),
            fields.get("student_id", ""),
            fields.get("password", ""),
            fields.get("academic_password") or None,
            self.caller(),
        )
        self.note_student(binding.student_id)
        body = WeChatBound(
            student_id=binding.student_id,
            bound=BoundSystems(card=True, academic=binding.academic_token_id is not None),
            account=binding.account,
        )
        self.write_json(body, 201)
