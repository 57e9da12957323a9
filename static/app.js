// jnufm's page: the API reference (rendered from /openapi.json), a try-it console and
// the operator dashboard (/ops/dashboard.json). Plain script, no build step, nothing
// inline (the page's Content-Security-Policy allows only scripts and styles from
// this server), and no innerHTML: every node is built, so answers show as text.
"use strict";

(function () {
  const LANG = new URLSearchParams(location.search).get("lang") === "en" ? "en" : "zh";

  const TEXT = {
    zh: {
      tagline: "校园 API 服务：校园卡余额与消费、课表、考试、成绩，来自学校的旧系统，经由一条保护管线（缓存、合并、预算、熔断、凭据闸门）快速、安全地回答。",
      "nav.try": "试一试", "nav.reference": "接口参考", "nav.dashboard": "运行状态",
      "try.title": "试一试",
      "try.note": "内置模拟器里，每个 20[01]NNNNNNN 形式的学号都存在，密码是学号的后 6 位（例如 2012052690 / 052690），校园卡和教务处相同。",
      "try.student": "学号", "try.password": "密码", "try.endpoint": "接口",
      "try.fresh": "要求学校重新查询（fresh=1）", "try.send": "发送",
      "try.headers": "响应头", "try.body": "响应体", "try.curl": "用 curl 调用",
      "try.sending": "发送中…", "try.failed": "请求失败：",
      "in.query": "查询", "in.path": "路径", "in.header": "请求头", "in.cookie": "Cookie",
      "try.meaning": "错误码的含义：",
      "try.jsonbody": "请求体（JSON）", "try.nocreds": "生产环境：请输入你自己的学号和密码。",
      "try.curlnote": "# 把 学号 和 密码 换成你自己的", "ref.standard": "标准格式的接口参考（Swagger UI）",
      "dash.charts": "最近几分钟", "chart.rps": "请求/秒", "chart.p99": "p99（毫秒）", "chart.hit": "缓存命中率（%）",
      "chart.flight": "{system}：学校请求进行中 / 预算 {budget}", "chart.breaker": "熔断器",
      "chart.empty": "等待读数…", "chart.now": "当前", "chart.max": "最高",
      "ref.title": "接口参考", "ref.intro1": "由",
      "ref.intro2": "（OpenAPI 3.1）生成：每个接口的参数、认证、回答、响应头和错误码。",
      loading: "加载中…", "ref.failed": "无法读取 /openapi.json：",
      "ref.params": "参数", "ref.body": "请求体", "ref.responses": "回答",
      "ref.name": "名称", "ref.in": "位置", "ref.required": "必填", "ref.type": "类型",
      "ref.about": "说明", "ref.yes": "是", "ref.no": "否", "ref.headers": "响应头",
      "ref.example": "示例", "ref.auth": "认证", "ref.noauth": "不需要",
      "ref.anon": "或不认证（POST 请求体里的凭据 / 本机访问）",
      "ref.schemes.studentBasic": "HTTP Basic：学号 : 密码",
      "ref.schemes.metricsToken": "Bearer 令牌（metrics.bearer_token），本机访问不需要",
      "ref.schemes.studentToken": "Bearer 令牌：学生会话（POST /v1/sessions）",
      "ref.schemes.clientKey": "X-Api-Key：注册客户端的密钥（可选）",
      "ref.codes": "错误码", "ref.optional": "（可能没有）",
      "dash.title": "运行状态", "dash.waiting": "等待第一次读数…",
      "dash.denied": "运行状态只对本机（metrics.allow_networks）或持有 metrics 令牌的客户端开放，与 /metrics 相同。",
      "dash.token": "令牌", "dash.use": "使用",
      "dash.rps": "请求/秒", "dash.hit": "缓存命中率", "dash.inflight": "处理中的请求",
      "dash.workers": "工作进程", "dash.school": "学校系统", "dash.system": "系统",
      "dash.srps": "请求/秒", "dash.failures": "失败/秒", "dash.flight": "进行中 / 预算",
      "dash.queue": "排队", "dash.breaker": "熔断器", "dash.live": "工作进程与配置代数",
      "dash.worker": "进程", "dash.generation": "代数",
      "dash.clients": "客户端（按学校请求数）", "dash.client": "客户端", "dash.total": "总计",
      "dash.lockouts": "当前锁定与限速", "dash.scope": "范围", "dash.who": "对象",
      "dash.wrong": "错误密码 / 允许", "dash.until": "直到", "dash.none": "无",
      "dash.unknown": "数据库暂时无法回答",
      "dash.pages": "最近无法读取的学校页面（python server.py pages show ID 查看脱敏副本）",
      "dash.page": "页面", "dash.lastseen": "最近一次", "dash.seen": "次数", "dash.reason": "原因",
      "dash.watches": "学生订阅提醒", "dash.wlive": "订阅数", "dash.wpolls": "学校查询/分钟",
      "dash.wdepth": "待发送消息", "dash.wdelivered": "送达/分钟", "dash.wretries": "重试/分钟",
      "dash.wfailed": "放弃（保留中）",
      "scope.student": "学生", "scope.ip": "地址", "scope.client": "注册客户端（限速）", "scope.account": "2013 账户",
      "client.anonymous": "匿名地址（合计）",
      "dash.about": "数据来自与 /metrics 相同的指标（所有工作进程合计），每 2 秒刷新；速率覆盖最近约 10 秒；“进行中”是学校请求在这段时间的平均并发数。",
      "dash.updated": "更新于 {time} · 由进程 {worker}（第 {generation} 代）回答 · 窗口 {window}",
      "dash.nowindow": "第一次读数，速率稍后出现",
      "dash.error": "无法读取运行状态：",
      "breaker.closed": "闭合（正常）", "breaker.half_open": "半开（试探中）", "breaker.open": "打开（暂停请求）",
      other: "English", otherLang: "en",
    },
    en: {
      tagline: "A campus API server: card balance and spending, timetable, exams and grades, from the school's legacy systems, answered fast and safely through one protection pipeline (cache, coalescing, budget, breaker, the credential gate).",
      "nav.try": "Try it", "nav.reference": "API reference", "nav.dashboard": "Dashboard",
      "try.title": "Try it",
      "try.note": "In the bundled simulator every student number 20[01]NNNNNNN exists, and its password is the last 6 digits of the number (e.g. 2012052690 / 052690), for the card center and the academic office alike.",
      "try.student": "Student number", "try.password": "Password", "try.endpoint": "Endpoint",
      "try.fresh": "Ask the school again (fresh=1)", "try.send": "Send",
      "try.headers": "Headers", "try.body": "Body", "try.curl": "With curl",
      "try.sending": "Sending…", "try.failed": "The request failed: ",
      "in.query": "query", "in.path": "path", "in.header": "header", "in.cookie": "cookie",
      "try.meaning": "What the error code means: ",
      "try.jsonbody": "Request body (JSON)", "try.nocreds": "Production: enter your own student number and password.",
      "try.curlnote": "# put your own student number and password in", "ref.standard": "The reference in the standard layout (Swagger UI)",
      "dash.charts": "The last minutes", "chart.rps": "requests/s", "chart.p99": "p99 (ms)", "chart.hit": "cache hit ratio (%)",
      "chart.flight": "{system}: school requests in flight / budget {budget}", "chart.breaker": "breaker",
      "chart.empty": "waiting for readings…", "chart.now": "now", "chart.max": "max",
      "ref.title": "API reference", "ref.intro1": "Rendered from",
      "ref.intro2": "(OpenAPI 3.1): every endpoint's parameters, authentication, answers, headers and error codes.",
      loading: "Loading…", "ref.failed": "Could not read /openapi.json: ",
      "ref.params": "Parameters", "ref.body": "Request body", "ref.responses": "Answers",
      "ref.name": "name", "ref.in": "in", "ref.required": "required", "ref.type": "type",
      "ref.about": "meaning", "ref.yes": "yes", "ref.no": "no", "ref.headers": "Headers",
      "ref.example": "Example", "ref.auth": "Authentication", "ref.noauth": "none",
      "ref.anon": "or none (credentials in a POST body / from loopback)",
      "ref.schemes.studentBasic": "HTTP Basic: student number : password",
      "ref.schemes.metricsToken": "Bearer token (metrics.bearer_token); none needed from loopback",
      "ref.schemes.studentToken": "Bearer token: a student's session (POST /v1/sessions)",
      "ref.schemes.clientKey": "X-Api-Key: a registered client's key (optional)",
      "ref.codes": "Error codes", "ref.optional": " (may be absent)",
      "dash.title": "Dashboard", "dash.waiting": "Waiting for the first reading…",
      "dash.denied": "The dashboard is open to loopback (metrics.allow_networks) or to clients with the metrics token, as /metrics is.",
      "dash.token": "Token", "dash.use": "Use",
      "dash.rps": "requests/s", "dash.hit": "cache hit ratio", "dash.inflight": "requests in flight",
      "dash.workers": "workers", "dash.school": "School systems", "dash.system": "system",
      "dash.srps": "requests/s", "dash.failures": "failures/s", "dash.flight": "in flight / budget",
      "dash.queue": "waiting", "dash.breaker": "breaker", "dash.live": "Workers and their configuration generation",
      "dash.worker": "worker", "dash.generation": "generation",
      "dash.clients": "Clients by school requests", "dash.client": "client", "dash.total": "total",
      "dash.lockouts": "Lockouts and slow-downs now", "dash.scope": "scope", "dash.who": "who",
      "dash.wrong": "wrong passwords / allowed", "dash.until": "until", "dash.none": "none",
      "dash.unknown": "the database cannot say right now",
      "dash.pages": "School pages we could not read lately (python server.py pages show ID prints the redacted copy)",
      "dash.page": "page", "dash.lastseen": "last seen", "dash.seen": "times", "dash.reason": "reason",
      "dash.watches": "Students' watches", "dash.wlive": "watches", "dash.wpolls": "school polls/min",
      "dash.wdepth": "messages waiting", "dash.wdelivered": "delivered/min", "dash.wretries": "retries/min",
      "dash.wfailed": "given up (kept)",
      "scope.student": "student", "scope.ip": "address", "scope.client": "registered client (slowed)", "scope.account": "2013 account",
      "client.anonymous": "anonymous addresses (together)",
      "dash.about": "From the same metrics as /metrics (all workers together), refreshed every 2 s; rates cover about the last 10 s; \"in flight\" is the school requests' average concurrency over that time.",
      "dash.updated": "Updated {time} · answered by worker {worker} (generation {generation}) · window {window}",
      "dash.nowindow": "first reading, rates come next",
      "dash.error": "Could not read the dashboard: ",
      "breaker.closed": "closed (normal)", "breaker.half_open": "half open (probing)", "breaker.open": "open (paused)",
      other: "中文", otherLang: "zh",
    },
  };

  function t(key) {
    const value = TEXT[LANG][key];
    return value === undefined ? key : value;
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name]));
  }

  // h("tag", {attributes}, ...children): children are nodes or text (never HTML).
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // `code` spans in the contract's descriptions, as <code> elements.
  function prose(text) {
    const parts = String(text || "").split("`");
    return parts.map((part, i) => (i % 2 ? h("code", {}, part) : part));
  }

  // --- language and views -------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = LANG === "en" ? "en" : "zh-CN";
    document.title = LANG === "en" ? "jnufm: campus API server" : "jnufm：校园 API 服务";
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    updateLanguageLink();
  }

  function updateLanguageLink() {
    const link = document.getElementById("lang-switch");
    const other = t("otherLang");
    const query = other === "en" ? "?lang=en" : "?lang=zh";
    link.href = query + location.hash;
    link.textContent = t("other");
    link.hreflang = other === "en" ? "en" : "zh-CN";
    link.lang = other === "en" ? "en" : "zh-CN";
  }

  const VIEWS = ["try", "reference", "dashboard"];

  function currentView() {
    const name = location.hash.replace("#", "");
    return VIEWS.includes(name) ? name : "try";
  }

  function showView() {
    const view = currentView();
    for (const name of VIEWS) {
      document.getElementById(name).hidden = name !== view;
    }
    for (const link of document.querySelectorAll(".tabs a")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    updateLanguageLink();
    if (view === "dashboard") dashboard.start();
    else dashboard.stop();
  }

  // --- the contract ----------------------------------------------------------------

  let spec = null;

  function resolve(schema) {
    let seen = 0;
    while (schema && schema.$ref && seen++ < 10) {
      const path = schema.$ref.replace("#/", "").split("/");
      schema = path.reduce((node, key) => node[key], spec);
    }
    return schema || {};
  }

  function operations() {
    const out = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) out.push({ path, method, op });
    }
    return out;
  }

  function summaryOf(op) {
    return LANG === "en" ? op.summary : op["x-summary-zh"] || op.summary;
  }

  function errorMeaning(status, code) {
    const entry = (spec["x-errors"] || []).find((e) => e.code === code && String(e.status) === String(status));
    if (!entry) return "";
    return LANG === "en" ? entry.when : entry.when_zh;
  }

  function typeOf(schema) {
    schema = resolve(schema);
    if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
    if (schema.allOf) return schema.allOf.map(typeOf).join(" & ");
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    let type = schema.type || "object";
    if (type === "array") type = typeOf(schema.items || {}) + "[]";
    if (schema.format) type += " (" + schema.format + ")";
    if (schema.pattern) type += " /" + schema.pattern + "/";
    return type;
  }

  // A schema as a nested list of its fields.
  function schemaTree(schema, depth) {
    schema = resolve(schema);
    if ((depth || 0) > 4) return null;
    if (schema.allOf) {
      const merged = { type: "object", properties: {}, required: [] };
      for (const part of schema.allOf.map(resolve)) {
        Object.assign(merged.properties, part.properties || {});
        merged.required.push(...(part.required || []));
      }
      return schemaTree(merged, depth);
    }
    if (schema.type === "array") return schemaTree(schema.items || {}, depth);
    const properties = schema.properties || {};
    const rows = Object.entries(properties).map(([name, field]) => {
      const resolved = resolve(field);
      const nested = resolved.type === "object" || resolved.type === "array" || resolved.additionalProperties
        ? schemaTree(field, (depth || 0) + 1) : null;
      const required = (schema.required || []).includes(name);
      return h("li", {},
        h("code", {}, name), required ? "" : "?", ": ",
        h("span", { class: "type" }, typeOf(field)),
        resolved.description ? [" — ", ...prose(resolved.description)] : [],
        nested);
    });
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
      rows.push(h("li", {}, h("code", {}, "{key}"), ": ",
        h("span", { class: "type" }, typeOf(schema.additionalProperties)),
        schemaTree(schema.additionalProperties, (depth || 0) + 1)));
    }
    return rows.length ? h("ul", { class: "tree" }, rows) : null;
  }

  function example(value) {
    if (value === undefined) return null;
    const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    return h("details", { class: "example" }, h("summary", { text: t("ref.example") }), h("pre", {}, text));
  }

  function authLine(op) {
    const schemes = [...new Set((op.security || []).flatMap((s) => Object.keys(s)))];
    const anonymous = (op.security || []).some((s) => !Object.keys(s).length);
    const text = schemes.length ? schemes.map((s) => t("ref.schemes." + s)).join("; ") + (anonymous ? "; " + t("ref.anon") : "") : t("ref.noauth");
    return h("p", { class: "auth" }, h("strong", {}, t("ref.auth") + ": "), text);
  }

  function paramsTable(params) {
    if (!params || !params.length) return null;
    return h("div", { class: "scroll" }, h("table", { class: "grid param-table" },
      h("thead", {}, h("tr", {}, ["ref.name", "ref.in", "ref.required", "ref.type", "ref.about"].map((k) => h("th", { text: t(k) })))),
      h("tbody", {}, params.map((p) => h("tr", {},
        h("td", {}, h("code", {}, p.name)), h("td", { text: t("in." + p.in) }),
        h("td", { text: p.required ? t("ref.yes") : t("ref.no") }),
        h("td", {}, h("span", { class: "type" }, typeOf(p.schema || {}))),
        h("td", {}, prose(p.description)))))));
  }

  function responseBlock(status, response) {
    const json = (response.content || {})["application/json"];
    const codes = [];
    if (Number(status) >= 400 && json) {
      // The codes this answer may carry: listed beside it, or as the enum of its schema.
      const enumSchema = ((((json.schema || {}).allOf || [])[1] || {}).properties || {}).error;
      const listed = response["x-error-codes"] || (enumSchema ? enumSchema.properties.code.enum : []);
      for (const code of listed) codes.push(h("li", {}, h("code", {}, code), " — ", prose(errorMeaning(status, code))));
    }
    const headers = Object.entries(response.headers || {}).map(([name, header]) => {
      const resolved = resolve(header);
      return h("li", {}, h("code", {}, name), resolved.required ? "" : t("ref.optional"), " — ", prose(resolved.description));
    });
    const media = Object.entries(response.content || {});
    return h("div", { class: "response", "data-status": status },
      h("h5", {}, h("span", { class: "status s" + String(status)[0] }, status), " ",
        Number(status) >= 400 ? "" : prose(response.description)),
      codes.length ? h("ul", { class: "codes" }, codes) : null,
      media.map(([type, content]) => [
        h("p", { class: "media" }, h("code", {}, type)),
        Number(status) < 400 ? schemaTree(content.schema || {}) : null,
        Number(status) < 400 ? example(content.example) : null,
      ]),
      headers.length ? [h("p", { class: "sub", text: t("ref.headers") }), h("ul", { class: "headers" }, headers)] : null);
  }

  function renderOperation(path, method, op) {
    const body = op.requestBody;
    return h("details", { class: "op", id: "op-" + op.operationId, "data-path": path, "data-method": method },
      h("summary", {},
        h("span", { class: "method " + method }, method.toUpperCase()), " ",
        h("code", { class: "path" }, path), " ",
        h("span", { class: "summary" }, summaryOf(op))),
      h("div", { class: "op-body" },
        op.description ? h("p", {}, prose(op.description)) : null,
        authLine(op),
        op.parameters && op.parameters.length ? [h("h4", { text: t("ref.params") }), paramsTable(op.parameters)] : null,
        body ? [h("h4", { text: t("ref.body") }),
          Object.entries(body.content).map(([type, content]) => [
            h("p", { class: "media" }, h("code", {}, type)), schemaTree(content.schema || {}), example(content.example)])] : null,
        h("h4", { text: t("ref.responses") }),
        Object.entries(op.responses).map(([status, response]) => responseBlock(status, response))));
  }

  function renderReference() {
    const list = document.getElementById("reference-list");
    const byTag = new Map(spec.tags.map((tag) => [tag.name, []]));
    for (const { path, method, op } of operations()) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(renderOperation(path, method, op));
    }
    const sections = [];
    for (const [name, ops] of byTag) {
      const tag = spec.tags.find((x) => x.name === name) || { name };
      sections.push(h("section", { class: "tag", "data-tag": name },
        h("h3", {}, LANG === "en" ? tag.description || name : tag["x-name-zh"] || name),
        ops));
    }
    list.replaceChildren(...sections);
  }

  // --- try it ----------------------------------------------------------------------

  const CREDENTIAL_PARAMS = ["stuid", "user", "password", "fresh"];
  const SENT_METHODS = ["get", "post", "delete"];
  let production = false;

  // One entry per path of the contract: GET where it exists, else POST, else DELETE.
  function tryable() {
    const all = operations().filter(({ method }) => SENT_METHODS.includes(method));
    return all.filter(({ path, method }) =>
      !all.some((o) => o.path === path && SENT_METHODS.indexOf(o.method) < SENT_METHODS.indexOf(method)));
  }

  // The request body's example, when the operation takes JSON.
  function jsonExample(op) {
    const content = ((op.requestBody || {}).content || {})["application/json"];
    if (!content) return null;
    return content.example === undefined ? "{}" : JSON.stringify(content.example, null, 2);
  }

  function setUpTry() {
    const select = document.getElementById("try-endpoint");
    const entries = tryable();
    select.replaceChildren(...entries.map(({ path, method, op }, i) =>
      h("option", { value: String(i), selected: path === "/v1/card/balance" }, method.toUpperCase() + " " + path + " — " + summaryOf(op))));
    const params = document.getElementById("try-params");
    function showParams() {
      const { op } = entries[Number(select.value)];
      const fields = (op.parameters || []).filter((p) =>
        p.in === "path" || (p.in === "query" && !CREDENTIAL_PARAMS.includes(p.name)));
      params.replaceChildren(...fields.map((p) => h("label", {},
        h("span", {}, p.name + (p.in === "path" ? " *" : "")),
        h("input", { name: p.name, "data-param": p.name, "data-in": p.in,
          value: p.in === "path" && p.example !== undefined ? String(p.example) : null,
          placeholder: p.example === undefined ? "" : String(p.example) }))));
      const example = jsonExample(op);
      document.getElementById("try-body-field").hidden = example === null;
      document.getElementById("try-json").value = example === null ? "" : example;
    }
    select.addEventListener("change", showParams);
    showParams();
    document.getElementById("try-form").addEventListener("submit", (event) => {
      event.preventDefault();
      send(entries[Number(select.value)]);
    });
  }

  // What the mode allows: in development the simulator's credentials are offered;
  // in production nothing is pre-filled and no password rule is stated.
  function setUpCredentials() {
    const note = document.getElementById("try-note");
    const student = production ? "" : "2012052690";
    const password = production ? "" : "052690";
    document.getElementById("try-student").value = student;
    document.getElementById("try-password").value = password;
    note.textContent = production ? t("try.nocreds") : t("try.note");
    note.hidden = false;
    const origin = location.origin;
    const who = production ? "STUDENT:PASSWORD" : student + ":" + password;
    const legacy = production ? "stuid=STUDENT&password=PASSWORD" : "stuid=" + student + "&password=" + password;
    const lines = [
      production ? t("try.curlnote") : null,
      "curl '" + origin + "/card/rest?" + legacy + "'",
      "curl -u " + who + " " + origin + "/v1/card/balance",
      "curl -u " + who + " '" + origin + "/v1/timetable?year=2026&term=1'",
      "curl '" + origin + "/v1/library/search?q=python'",
    ];
    document.getElementById("try-curl").textContent = lines.filter((x) => x !== null).join("\n");
  }

  const SHOWN_HEADERS = ["content-type", "age", "cache-status", "x-request-id", "server-timing", "retry-after", "location", "www-authenticate"];

  function basicAuth(student, password) {
    try {
      return "Basic " + btoa(student + ":" + password);
    } catch (_) {
      return "Basic " + btoa(unescape(encodeURIComponent(student + ":" + password)));
    }
  }

  async function send({ path, method, op }) {
    const student = document.getElementById("try-student").value.trim();
    const password = document.getElementById("try-password").value;
    const query = new URLSearchParams();
    const names = (op.parameters || []).map((p) => p.name);
    const headers = {};
    const legacyId = names.includes("stuid") ? "stuid" : names.includes("user") ? "user" : null;
    const basic = (op.security || []).some((s) => "studentBasic" in s);
    if (legacyId) query.set(legacyId, student);
    if (names.includes("password")) query.set("password", password);
    if (!legacyId && basic && student) headers.Authorization = basicAuth(student, password);
    let url = path;
    for (const input of document.querySelectorAll("#try-params input")) {
      const value = input.value.trim();
      if (input.dataset.in === "path") url = url.replace("{" + input.dataset.param + "}", encodeURIComponent(value));
      else if (value) query.set(input.dataset.param, value);
    }
    // The school is asked again only when the box is ticked: an untouched request is
    // answered from the cache and spends nothing of the school's budget.
    const fresh = document.getElementById("try-fresh").checked;
    if (fresh && names.includes("fresh")) query.set("fresh", "1");
    url += query.toString() ? "?" + query : "";
    const init = { method: method.toUpperCase(), headers, credentials: "omit", cache: fresh ? "no-store" : "default" };
    if (!document.getElementById("try-body-field").hidden && method !== "get") {
      headers["Content-Type"] = "application/json";
      init.body = document.getElementById("try-json").value;
    }
    const shown = url.replace(/(password=)[^&]*/g, "$1***");
    const result = document.getElementById("try-result");
    result.hidden = false;
    document.getElementById("try-status").textContent = t("try.sending");
    document.getElementById("try-request").textContent = method.toUpperCase() + " " + shown;
    document.getElementById("try-headers").replaceChildren();
    document.getElementById("try-body").textContent = "";
    try {
      const response = await fetch(url, init);
      const text = await response.text();
      document.getElementById("try-status").textContent = response.status + " " + (response.statusText || "");
      result.dataset.status = String(response.status);
      const rows = SHOWN_HEADERS.filter((name) => response.headers.has(name)).map((name) =>
        h("tr", { "data-header": name }, h("th", {}, name), h("td", {}, h("code", {}, response.headers.get(name)))));
      document.getElementById("try-headers").replaceChildren(...rows);
      let pretty = text;
      try {
        pretty = JSON.stringify(JSON.parse(text), null, 2);
      } catch (_) { /* not JSON: an iCalendar feed, a book page, a cover */ }
      document.getElementById("try-body").textContent = pretty;
      // The server's messages are English; the code's meaning is in both languages.
      let code = null;
      try {
        const parsed = JSON.parse(text);
        code = parsed && parsed.error && typeof parsed.error.code === "string" ? parsed.error.code : null;
      } catch (_) { /* not JSON */ }
      const meaning = document.getElementById("try-meaning");
      meaning.hidden = !code || !errorMeaning(response.status, code);
      meaning.replaceChildren(...(meaning.hidden ? [] : [t("try.meaning"), h("code", {}, code), " — ", ...prose(errorMeaning(response.status, code))]));
    } catch (error) {
      document.getElementById("try-status").textContent = t("try.failed") + error;
    }
  }

  // --- small charts of the last minutes (drawn here, inline SVG, no library) ---------

  const charts = (function () {
    const KEEP = 150; // readings kept: five minutes at one poll every 2 s
    const SPAN_MIN = 30; // the x axis shows at least a minute, so the first readings are not a dot
    const readings = [];
    const SVG = "http://www.w3.org/2000/svg";
    const W = 300;
    const H = 64;

    function svg(tag, attrs) {
      const node = document.createElementNS(SVG, tag);
      for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
      return node;
    }

    function record(body) {
      const school = {};
      for (const s of body.school) school[s.system] = { inFlight: s.in_flight, budget: s.budget, breaker: s.breaker };
      readings.push({
        rps: body.requests_per_s,
        p99: body.latency_ms.p99,
        hit: body.cache_hit_ratio === null ? null : 100 * body.cache_hit_ratio,
        school,
      });
      if (readings.length > KEEP) readings.splice(0, readings.length - KEEP);
    }

    // Readings across the x axis: the kept ones, at least a minute's, newest at the right.
    function span() {
      return Math.max(SPAN_MIN, readings.length);
    }

    // A line of the values (null: a gap) over the kept readings, scaled to `top`.
    function line(values, top, kind) {
      const step = W / (span() - 1);
      const offset = span() - values.length;
      let d = "";
      let pen = false;
      values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        const x = (offset + i) * step;
        const y = H - 2 - (Math.min(v, top) / top) * (H - 4);
        d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
        pen = true;
      });
      return svg("path", { d: d || "M0 " + H, class: "line " + kind, fill: "none" });
    }

    function frame(kind) {
      return svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", class: "spark", role: "img", "data-chart": kind });
    }

    function card(kind, title, now, drawing) {
      return h("figure", { class: "chart", "data-chart": kind },
        h("figcaption", {}, h("span", { class: "title" }, title), h("span", { class: "now" }, now)),
        drawing);
    }

    function numeric(kind, title, pick, digits, fixedTop) {
      const values = readings.map(pick);
      const known = values.filter((v) => v !== null && v !== undefined);
      const top = fixedTop || Math.max(1e-9, ...known) * 1.15;
      const drawing = frame(kind);
      drawing.append(svg("line", { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: "axis" }), line(values, top, kind));
      const last = known.length ? known[known.length - 1] : null;
      const max = known.length ? Math.max(...known) : null;
      const now = last === null ? t("chart.empty")
        : t("chart.now") + " " + last.toFixed(digits) + " · " + t("chart.max") + " " + max.toFixed(digits);
      return card(kind, title, now, drawing);
    }

    function flight(system) {
      const values = readings.map((r) => (r.school[system] || {}).inFlight);
      const budgets = readings.map((r) => (r.school[system] || {}).budget).filter((b) => b);
      const budget = budgets.length ? budgets[budgets.length - 1] : null;
      const known = values.filter((v) => v !== null && v !== undefined);
      const top = Math.max(budget || 0, ...known, 1) * 1.25;
      const drawing = frame("flight");
      if (budget) {
        const y = H - 2 - (budget / top) * (H - 4);
        drawing.append(svg("line", { x1: 0, y1: y, x2: W, y2: y, class: "budget" }));
      }
      drawing.append(svg("line", { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: "axis" }), line(values, top, "flight"));
      // The breaker's state along the top: one band per reading.
      const step = W / span();
      const offset = span() - readings.length;
      readings.forEach((r, i) => {
        const state = (r.school[system] || {}).breaker;
        if (state) drawing.append(svg("rect", { x: ((offset + i) * step).toFixed(1), y: 0, width: step.toFixed(2), height: 4, class: "band " + state }));
      });
      const last = known.length ? known[known.length - 1] : null;
      const lastState = readings.length ? (readings[readings.length - 1].school[system] || {}).breaker : null;
      const now = (last === null ? "—" : last.toFixed(2)) + " / " + (budget === null ? "—" : budget) +
        (lastState ? " · " + t("chart.breaker") + " " + t("breaker." + lastState) : "");
      const figure = card("flight", fill(t("chart.flight"), { system, budget: budget === null ? "—" : budget }), now, drawing);
      figure.dataset.system = system;
      return figure;
    }

    function draw() {
      const systems = readings.length ? Object.keys(readings[readings.length - 1].school) : [];
      document.getElementById("dash-charts").replaceChildren(
        numeric("rps", t("chart.rps"), (r) => r.rps, 1),
        numeric("p99", t("chart.p99"), (r) => r.p99, 1),
        numeric("hit", t("chart.hit"), (r) => r.hit, 1, 100),
        ...systems.map(flight));
    }

    return { record, draw, count: () => readings.length };
  })();

  // --- the dashboard -------------------------------------------------------------------

  const dashboard = (function () {
    let timer = null;
    let busy = false;

    function number(value, digits) {
      if (value === null || value === undefined) return "—";
      return Number(value).toFixed(digits === undefined ? 1 : digits);
    }

    function set(id, text) {
      document.getElementById(id).textContent = text;
    }

    // Each cell names its column (data-label), so a narrow screen can show the rows
    // as cards (style.css, `.stack`) instead of a table wider than the screen.
    function labelCells(selector) {
      const table = document.querySelector(selector);
      const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
      for (const row of table.querySelectorAll("tbody tr")) {
        [...row.children].forEach((td, i) => {
          if (names[i] !== undefined && !td.hasAttribute("colspan")) td.dataset.label = names[i];
        });
      }
    }

    function render(body) {
      charts.record(body);
      charts.draw();
      set("dash-rps", number(body.requests_per_s, 1));
      set("dash-hit", body.cache_hit_ratio === null ? "—" : (100 * body.cache_hit_ratio).toFixed(1) + "%");
      set("dash-p50", body.latency_ms.p50 === null ? "—" : number(body.latency_ms.p50, 1) + " ms");
      set("dash-p99", body.latency_ms.p99 === null ? "—" : number(body.latency_ms.p99, 1) + " ms");
      set("dash-inflight", number(body.in_flight, 0));
      set("dash-workers", number(body.workers.count, 0));
      const rows = body.school.map((s) => {
        const meter = h("meter", { min: "0", max: String(s.budget || 1), low: String((s.budget || 1) * 0.5), high: String((s.budget || 1) * 0.9), optimum: "0" });
        meter.value = s.in_flight || 0;
        return h("tr", { "data-system": s.system },
          h("td", {}, h("code", {}, s.system)),
          h("td", { class: "num", text: number(s.requests_per_s, 2) }),
          h("td", { class: "num", text: number(s.failures_per_s, 2) }),
          h("td", { class: "flight" }, meter, " ", number(s.in_flight, 2) + " / " + (s.budget === null ? "—" : s.budget)),
          h("td", { class: "num", text: number(s.waiting, 0) }),
          h("td", {}, h("span", { class: "breaker " + s.breaker, text: t("breaker." + s.breaker) })));
      });
      document.querySelector("#dash-school tbody").replaceChildren(...rows);
      labelCells("#dash-school");
      const clients = (body.clients || []).map((c) => h("tr", { "data-client": c.client },
        h("td", {}, c.client === "anonymous" ? t("client.anonymous") : h("code", {}, c.client)),
        h("td", { class: "num", text: number(c.school_requests_per_s, 2) }),
        h("td", { class: "num", text: number(c.school_requests, 0) })));
      document.querySelector("#dash-clients tbody").replaceChildren(...clients);
      const watches = body.watches || {};
      set("dash-wlive", number(watches.live, 0));
      set("dash-wpolls", number(watches.polls_per_min, 1));
      set("dash-wdepth", number(watches.outbox_depth, 0));
      set("dash-wdelivered", number(watches.delivered_per_min, 1));
      set("dash-wretries", number(watches.retries_per_min, 1));
      set("dash-wfailed", number(watches.given_up, 0) +
        (watches.failures_per_min ? " (+" + number(watches.failures_per_min, 1) + "/min)" : ""));
      let locks;
      if (body.lockouts === null) {
        locks = [h("tr", {}, h("td", { colspan: "4", class: "muted", text: t("dash.unknown") }))];
      } else if (!body.lockouts || body.lockouts.length === 0) {
        locks = [h("tr", {}, h("td", { colspan: "4", class: "muted", text: t("dash.none") }))];
      } else {
        locks = body.lockouts.map((l) => h("tr", { "data-scope": l.scope },
          h("td", { text: t("scope." + l.scope) }),
          h("td", {}, h("code", {}, l.who)),
          h("td", { class: "num", text: l.wrong + " / " + l.allowed }),
          h("td", { text: new Date(l.until).toLocaleTimeString(LANG === "en" ? "en-GB" : "zh-CN") })));
      }
      document.querySelector("#dash-lockouts tbody").replaceChildren(...locks);
      let pages;
      if (body.unreadable_pages === null) {
        pages = [h("tr", {}, h("td", { colspan: "6", class: "muted", text: t("dash.unknown") }))];
      } else if (!body.unreadable_pages || body.unreadable_pages.length === 0) {
        pages = [h("tr", {}, h("td", { colspan: "6", class: "muted", text: t("dash.none") }))];
      } else {
        pages = body.unreadable_pages.map((p) => h("tr", { "data-capture": String(p.id) },
          h("td", { class: "num", text: p.id }),
          h("td", {}, h("code", {}, p.system)),
          h("td", {}, h("code", {}, p.page)),
          h("td", { text: new Date(p.last_seen).toLocaleString(LANG === "en" ? "en-GB" : "zh-CN") }),
          h("td", { class: "num", text: p.seen }),
          h("td", { text: p.reason })));
      }
      document.querySelector("#dash-pages tbody").replaceChildren(...pages);
      labelCells("#dash-pages");
      const workers = body.workers.live.map((w) => h("tr", {},
        h("td", { class: "num", text: w.worker }), h("td", { class: "num", text: w.pid === null ? "—" : w.pid }),
        h("td", { class: "num", text: w.generation })));
      document.querySelector("#dash-worker-list tbody").replaceChildren(...workers);
      set("dash-updated", fill(t("dash.updated"), {
        time: new Date().toLocaleTimeString(LANG === "en" ? "en-GB" : "zh-CN"),
        worker: body.answered_by.worker,
        generation: body.answered_by.generation,
        window: body.window_s === null ? t("dash.nowindow") : body.window_s.toFixed(1) + " s",
      }));
    }

    async function poll() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const token = sessionStorage.getItem("jnufm-metrics-token");
        const headers = token ? { Authorization: "Bearer " + token } : {};
        const response = await fetch("/ops/dashboard.json", { headers, cache: "no-store", credentials: "omit" });
        document.getElementById("dash-denied").hidden = response.status !== 403;
        if (response.ok) render(await response.json());
        else if (response.status !== 403) {
          // The server says why (e.g. "metrics are disabled"), as every JSON error does.
          const failed = await response.json().catch(() => null);
          const why = failed && failed.error ? ": " + failed.error.message : "";
          set("dash-updated", t("dash.error") + response.status + why);
        }
      } catch (error) {
        set("dash-updated", t("dash.error") + error);
      } finally {
        busy = false;
      }
    }

    return {
      start() {
        if (timer === null) {
          poll();
          timer = setInterval(poll, 2000);
        }
      },
      stop() {
        if (timer !== null) clearInterval(timer);
        timer = null;
      },
      setUp() {
        document.getElementById("dash-token-form").addEventListener("submit", (event) => {
          event.preventDefault();
          sessionStorage.setItem("jnufm-metrics-token", document.getElementById("dash-token").value);
          poll();
        });
      },
    };
  })();

  // --- start ---------------------------------------------------------------------------

  async function loadContract() {
    const list = document.getElementById("reference-list");
    try {
      const response = await fetch("/openapi.json", { cache: "no-cache", credentials: "omit" });
      if (!response.ok) throw new Error(String(response.status));
      spec = await response.json();
    } catch (error) {
      list.replaceChildren(h("p", { class: "error", text: t("ref.failed") + error }));
      return;
    }
    // The server's version (pyproject.toml), the same /healthz reports.
    document.getElementById("app-version").textContent = "jnufm " + spec.info.version;
    renderReference();
    setUpTry();
    try {
      const health = await fetch("/healthz", { cache: "no-store", credentials: "omit" });
      production = (await health.json()).mode !== "development";
    } catch (_) {
      production = true;  // not knowing, offer nothing
    }
    setUpCredentials();
    document.body.dataset.contract = "loaded";
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyLanguage();
    dashboard.setUp();
    window.addEventListener("hashchange", showView);
    showView();
    loadContract();
  });
})();
