// The WeChat bind page: the ticket comes in the URL's fragment (never sent in a request
// line, so in no access log); the form is posted as JSON to /v1/wechat/bind. Passwords go
// in the body only, and the fields are emptied after every answer.
"use strict";

(function () {
  var ENDPOINT = "../v1/wechat/bind";

  // What the student reads for an error code (Chinese first); otherwise the server's message.
  var MESSAGES = {
    wechat_ticket_invalid: "这个绑定链接无效。请回到公众号发送“绑定”，用新的链接绑定。",
    wechat_ticket_expired: "这个绑定链接已经过期。请回到公众号发送“绑定”，用新的链接绑定。",
    wechat_ticket_used: "这个绑定链接已经用过了。如需重新绑定，请回到公众号发送“绑定”。",
    invalid_credentials: "学号或密码不对，请检查后再试。",
    missing_student_id: "请填写学号。",
    invalid_student_id: "学号应为 6 到 16 位数字。",
    missing_password: "请填写校园卡密码。",
    invalid_password: "密码格式不对，请检查后再试。",
    too_many_failed_logins: "密码错误次数太多，请稍后再试。",
    rate_limited: "操作太频繁了，请稍后再试。",
    student_busy: "正在处理你的其他查询，请稍后再试。",
    client_slowed: "操作暂时被限速，请稍后再试。",
    school_unavailable: "学校系统暂时无法访问，请稍后再试。",
    school_busy: "学校系统现在很忙，请稍后再试。",
    school_timeout: "学校系统没有及时回答，请稍后再试。",
    school_session_lost: "学校系统中断了登录，请再试一次。",
    school_page_unreadable: "学校系统返回的页面读不懂，请稍后再试。",
    not_configured: "本服务器还没有开通微信绑定。",
    invalid_system: "本服务器没有开通教务处查询，请不填教务处密码再试。",
    storage_unavailable: "jnu.fm 暂时出了点问题，请稍后再试。"
  };

  function ticketFromHash() {
    var hash = window.location.hash.replace(/^#/, "");
    var parts = hash.split("&");
    for (var i = 0; i < parts.length; i++) {
      var pair = parts[i].split("=");
      if (pair[0] === "ticket" && pair.length === 2 && pair[1]) {
        return decodeURIComponent(pair[1]);
      }
    }
    return "";
  }

  function show(status, text, kind) {
    status.textContent = text;
    status.className = "status" + (kind ? " " + kind : "");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("bind-form");
    var status = document.getElementById("status");
    var button = document.getElementById("submit");
    var student = document.getElementById("student-id");
    var password = document.getElementById("password");
    var academic = document.getElementById("academic-password");
    // Off the address bar (a screenshot or a shared URL no longer carries it), kept in
    // this tab only, so that a reload still finds it.
    var ticket = ticketFromHash();
    try {
      if (ticket) {
        window.sessionStorage.setItem("wechat-bind-ticket", ticket);
      } else {
        ticket = window.sessionStorage.getItem("wechat-bind-ticket") || "";
      }
    } catch (ignored) {
      // Storage refused (a private tab): the ticket lives in this page only.
    }
    if (ticket && window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname);
    }

    function forgetTicket() {
      try {
        window.sessionStorage.removeItem("wechat-bind-ticket");
      } catch (ignored) {
        // Nothing was kept.
      }
    }
    if (!ticket) {
      show(status, "链接不完整。请回到公众号发送“绑定”，点开新的链接。", "bad");
      button.disabled = true;
    }

    function clearPasswords() {
      password.value = "";
      academic.value = "";
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!ticket) {
        return;
      }
      var body = {
        ticket: ticket,
        student_id: student.value.trim(),
        password: password.value
      };
      if (academic.value) {
        body.academic_password = academic.value;
      }
      clearPasswords();
      button.disabled = true;
      show(status, "正在向学校核对密码……", "");
      fetch(ENDPOINT, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer"
      })
        .then(function (response) {
          return response.json().then(
            function (data) { return { status: response.status, data: data }; },
            function () { return { status: response.status, data: null }; }
          );
        })
        .then(function (answer) {
          body = null;
          if (answer.status === 201 && answer.data) {
            var systems = answer.data.bound && answer.data.bound.academic ? "校园卡和教务处" : "校园卡";
            show(
              status,
              "绑定成功：学号 " + answer.data.student_id + " 已绑定（" + systems + "）。\n" +
                "现在可以回到微信，发送“余额”“课表”等查询。",
              "ok"
            );
            form.className = "hidden";
            forgetTicket();
            return;
          }
          var error = answer.data && answer.data.error ? answer.data.error : null;
          var text = error && MESSAGES[error.code] ? MESSAGES[error.code]
            : "绑定没有成功" + (error && error.message ? "：" + error.message : "（" + answer.status + "）");
          var done = error && (error.code === "wechat_ticket_used" || error.code === "wechat_ticket_expired" ||
            error.code === "wechat_ticket_invalid");
          show(status, text, "bad");
          button.disabled = Boolean(done);
          if (done) {
            forgetTicket();
          }
        })
        .catch(function () {
          body = null;
          show(status, "网络出错了，请检查网络后再试。", "bad");
          button.disabled = false;
        });
    });
  });
})();
