/* The chat page: log in, list the user's chats, chat with the reply streamed as it arrives.

   Same origin as the RAI API, so no CORS and no second port. Untrusted text (replies, stored
   messages, server messages) only ever reaches the page through textContent or RaiMarkdown.
   The access token is kept in sessionStorage: it survives a reload of this tab and is gone when
   the tab closes; it is never in a cookie (no CSRF) nor in localStorage (no other tab, no disk
   after the browser closes). docs/decisions.md "The chat page keeps its token in sessionStorage". */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "rai.token";
  const USER_KEY = "rai.user";
  const AUTH_ERRORS = new Set(["token_expired", "invalid_token", "missing_token"]);
  const state = { token: sessionStorage.getItem(TOKEN_KEY), user: sessionStorage.getItem(USER_KEY),
                  sessionId: null, controller: null };

  class ApiFailure extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  // ---- talking to the RAI API ------------------------------------------------------------------

  async function send(method, path, body, signal) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (body && body.stream) headers.Accept = "text/event-stream, application/json";
    try {
      return await fetch(path, { method, headers, signal, cache: "no-store", credentials: "omit",
                                 body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiFailure(0, "network", String(err.message || err));
    }
  }

  async function failure(response) {
    let body = {};
    try {
      body = await response.json();
    } catch (err) { /* not JSON: the status says enough */ }
    return new ApiFailure(response.status, body.error || "http_" + response.status,
                          body.message || response.statusText || "no reason given",
                          response.headers.get("Retry-After"));
  }

  async function call(method, path, body) {
    const response = await send(method, path, body);
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  function wait(seconds) {
    return seconds ? `${seconds} second${seconds === "1" ? "" : "s"}` : "a moment";
  }

  /* What went wrong, in words a user can act on. */
  function explain(err) {
    switch (err.code) {
      case "network": return `Cannot reach the RAI API at ${location.origin}: is it running? Start it with “raictl up”.`;
      case "username_taken": return "That username is taken: choose another, or log in if it is yours.";
      case "invalid_credentials": return "Wrong username or password.";
      case "rate_limited": return `Too many failed attempts: wait ${wait(err.retryAfter)} and try again.`;
      case "busy": return `The server is busy with other chats: try again in ${wait(err.retryAfter)}.`;
      case "llm_unavailable": return `The language model is unavailable: ${err.message}`;
      case "schema_mismatch": return `The database schema does not match this RAI API: run “raictl migrate --repair”. Details: ${err.message}`;
      case "token_expired": return "Your login has expired: log in again.";
      case "invalid_token": case "missing_token": return "Your login is no longer valid: log in again.";
      case "invalid_input": return capital(err.message) + ".";
      default: return capital(err.message) + (err.status ? ` (HTTP ${err.status}, ${err.code})` : "");
    }
  }

  function capital(text) {
    return text ? text[0].toUpperCase() + text.slice(1) : "";
  }

  /* An error of a signed-in action: a dead token sends the user back to the login form. */
  function handle(err, where) {
    if (err.name === "AbortError") return;
    if (AUTH_ERRORS.has(err.code)) {
      logOut(explain(err));
      return;
    }
    show(where || $("notice"), explain(err));
  }

  function show(node, text) {
    node.textContent = text;
    node.hidden = !text;
  }

  // ---- signing in and out ------------------------------------------------------------------------

  async function authenticate(register) {
    const username = $("username").value.trim();
    const password = $("password").value;
    show($("auth-error"), "");
    setBusy($("auth-form"), true);
    try {
      if (register) await call("POST", "/api/auth/register", { username, password });
      const body = await call("POST", "/api/auth/login", { username, password });
      state.token = body.access_token;
      state.user = username.toLowerCase();
      sessionStorage.setItem(TOKEN_KEY, state.token);
      sessionStorage.setItem(USER_KEY, state.user);
      $("password").value = "";
      showChat();
    } catch (err) {
      show($("auth-error"), explain(err));
    } finally {
      setBusy($("auth-form"), false);
    }
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", String(busy));
    for (const button of form.querySelectorAll("button")) button.disabled = busy;
  }

  function logOut(reason) {
    if (state.controller) state.controller.abort();
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    state.token = state.user = state.sessionId = null;
    $("messages").replaceChildren();
    $("session-list").replaceChildren();
    showAuth(reason || "");
  }

  function showAuth(reason) {
    $("chat-view").hidden = true;
    $("who").hidden = $("logout").hidden = true;
    show($("notice"), "");
    $("auth-view").hidden = false;
    show($("auth-error"), reason);
    $("username").focus();
  }

  function showChat() {
    $("auth-view").hidden = true;
    $("chat-view").hidden = false;
    $("who").textContent = state.user || "";
    $("who").hidden = $("logout").hidden = false;
    newChat();
    loadSessions();
  }

  // ---- the engine ------------------------------------------------------------------------------------

  async function loadEngine() {
    try {
      const response = await send("GET", "/api/health");
      const health = await response.json();
      showEngine(health.llm_engine, health.llm_status);
    } catch (err) {
      showEngine(null, "unreachable");
    }
  }

  function showEngine(engine, status) {
    const badge = $("engine");
    const mock = engine === "mock";
    let text = "Engine: " + (engine || "unknown");
    if (mock) text += " (canned replies, not a real model)";
    if (status && status !== "ok") text += " — " + status;
    badge.textContent = text;
    badge.classList.toggle("mock", mock);
    badge.classList.toggle("down", Boolean(status && status !== "ok"));
    badge.hidden = false;
  }

  // ---- the list of chats ---------------------------------------------------------------------------

  async function loadSessions() {
    try {
      const body = await call("GET", "/api/sessions");
      renderSessions(body.sessions);
    } catch (err) {
      handle(err);
    }
  }

  function renderSessions(sessions) {
    const items = sessions.map((s) => {
      const item = document.createElement("li");
      item.dataset.sessionId = s.id;
      const title = s.title || "Untitled chat";
      const open = item.appendChild(document.createElement("button"));
      open.type = "button";
      open.className = "session-title";
      open.textContent = title;
      if (s.id === state.sessionId) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => openSession(s.id));
      const remove = item.appendChild(document.createElement("button"));
      remove.type = "button";
      remove.className = "delete";
      remove.textContent = "✕";
      remove.setAttribute("aria-label", `Delete the chat “${title}”`);
      remove.title = "Delete";
      remove.addEventListener("click", () => deleteSession(s.id, title));
      return item;
    });
    $("session-list").replaceChildren(...items);
    $("no-sessions").hidden = sessions.length > 0;
  }

  function markCurrent() {
    $("system-box").hidden = state.sessionId !== null;  // a system prompt is set when a chat begins
    for (const item of $("session-list").children) {
      const button = item.querySelector(".session-title");
      if (item.dataset.sessionId === state.sessionId) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  async function openSession(id) {
    if (state.controller) state.controller.abort();
    try {
      const body = await call("GET", `/api/sessions/${encodeURIComponent(id)}/messages`);
      state.sessionId = id;
      $("messages").replaceChildren(...body.messages.map((m) => bubble(m.role, m.content, "done")));
      markCurrent();
      closeSessionsPanel();
      scrollToEnd();
      $("message").focus();
    } catch (err) {
      handle(err);
    }
  }

  async function deleteSession(id, title) {
    if (!window.confirm(`Delete the chat “${title}” and its messages?`)) return;
    try {
      await call("DELETE", `/api/sessions/${encodeURIComponent(id)}`);
      if (id === state.sessionId) newChat();
      await loadSessions();
    } catch (err) {
      handle(err);
    }
  }

  function newChat() {
    if (state.controller) state.controller.abort();
    state.sessionId = null;
    $("system").value = "";
    $("messages").replaceChildren();
    markCurrent();
    closeSessionsPanel();
    $("message").focus();
  }

  function closeSessionsPanel() {
    $("sessions").classList.remove("open");
    $("toggle-sessions").setAttribute("aria-expanded", "false");
  }

  // ---- messages --------------------------------------------------------------------------------------

  function bubble(role, text, phase) {
    const node = document.createElement("article");
    node.className = "msg " + role;
    node.dataset.role = role;
    node.dataset.state = phase;
    node.setAttribute("aria-label", role === "user" ? "You said" : "RAI replied");
    node.appendChild(document.createElement("div")).className = "body";
    setText(node, text);
    return node;
  }

  function setText(node, text) {
    const body = node.querySelector(".body");
    if (node.dataset.role === "user") body.textContent = text;
    else body.replaceChildren(window.RaiMarkdown.render(text));
  }

  function note(node, text, kind) {
    const line = node.appendChild(document.createElement("p"));
    line.className = "note " + (kind || "");
    line.textContent = text;
  }

  function nearEnd() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  }

  function scrollToEnd() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  /* Change the page and keep the end in view, unless the user had scrolled up to read. */
  function follow(change) {
    const stick = nearEnd();
    change();
    if (stick) scrollToEnd();
  }

  // ---- one chat turn --------------------------------------------------------------------------------

  async function submit() {
    const text = $("message").value;
    if (!text.trim() || state.controller) return;
    const reply = bubble("assistant", "", "waiting");
    follow(() => $("messages").append(bubble("user", text, "done"), reply));
    $("message").value = "";
    const controller = new AbortController();
    state.controller = controller;
    setWaiting(true, "Waiting for the reply…");
    const turn = { text: "", node: reply, finished: false };
    try {
      const body = { message: text, stream: true };
      if (state.sessionId) body.session_id = state.sessionId;
      else if ($("system").value.trim()) body.system = $("system").value.trim();
      const response = await send("POST", "/api/chat", body, controller.signal);
      if (!response.ok) throw await failure(response);
      if ((response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        await readStream(response, turn);
      } else {
        const answer = await response.json();
        onEvent(turn, "start", { session_id: answer.session_id });
        onEvent(turn, "delta", { text: answer.response });
        onEvent(turn, "done", { session_id: answer.session_id });
      }
      if (!turn.finished) fail(turn, "The reply was cut off: the connection closed before it finished.");
    } catch (err) {
      if (err.name === "AbortError") stopped(turn);
      else failed(turn, err, text);
    } finally {
      if (state.controller === controller) state.controller = null;
      setWaiting(false, "");
      if (state.sessionId) loadSessions(); // a new chat's title; the most recent chat first
    }
  }

  async function readStream(response, turn) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        parseEvent(turn, buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
    if (buffer.trim()) parseEvent(turn, buffer);
  }

  /* One server-sent event block: `event: NAME` and `data: JSON` lines. */
  function parseEvent(turn, block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":");
      if (colon === 0) continue; // a comment (keep-alive)
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    let payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch (err) {
      return;
    }
    onEvent(turn, name, payload);
  }

  function onEvent(turn, name, data) {
    if (name === "start" && data.session_id) {
      state.sessionId = data.session_id;
      markCurrent();
    } else if (name === "delta" && typeof data.text === "string") {
      turn.text += data.text;
      turn.node.dataset.state = "streaming";
      setWaiting(true, "Receiving the reply… (Esc stops it)");
      scheduleRender(turn);
    } else if (name === "done") {
      turn.finished = true;
      if (data.session_id) state.sessionId = data.session_id;
      follow(() => {
        setText(turn.node, turn.text);
        turn.node.dataset.state = "done";
        if (data.engine) engineNote(turn.node, data.engine);
        else if ("engine" in data) note(turn.node, "answered from memory (the database), not by the model", "source");
      });
      if (data.engine) showEngine(data.engine, "ok");
    } else if (name === "error") {
      turn.finished = true;
      fail(turn, explain(new ApiFailure(0, data.error || "error", data.message || "the reply failed")));
      if (AUTH_ERRORS.has(data.error)) logOut(explain(new ApiFailure(401, data.error, data.message)));
    }
  }

  function scheduleRender(turn) {
    if (!turn.painted) { // the first text goes on screen at once; later ones once per frame
      turn.painted = true;
      follow(() => setText(turn.node, turn.text));
      return;
    }
    if (turn.scheduled) return;
    turn.scheduled = true;
    requestAnimationFrame(() => {
      turn.scheduled = false;
      follow(() => setText(turn.node, turn.text));
    });
  }

  function engineNote(node, engine) {
    if (engine === "mock") note(node, "mock engine: a canned reply, not a real model", "mock");
    else note(node, "engine: " + engine, "source");
  }

  function fail(turn, text) {
    follow(() => {
      setText(turn.node, turn.text);
      turn.node.dataset.state = "error";
      note(turn.node, text, "error");
    });
  }

  function failed(turn, err, text) {
    if (!$("message").value) $("message").value = text; // nothing was stored: the text can be sent again
    fail(turn, explain(err));
    if (AUTH_ERRORS.has(err.code)) logOut(explain(err));
  }

  function stopped(turn) {
    follow(() => {
      setText(turn.node, turn.text);
      turn.node.dataset.state = "stopped";
      note(turn.node, "Stopped.", "stopped");
    });
  }

  function setWaiting(waiting, text) {
    $("messages").setAttribute("aria-busy", String(waiting));
    $("status").textContent = text;
    $("send").disabled = waiting;
    $("stop").hidden = !waiting;
  }

  // ---- wiring ------------------------------------------------------------------------------------------

  function wire() {
    $("auth-form").addEventListener("submit", (e) => {
      e.preventDefault();
      authenticate(false);
    });
    $("register").addEventListener("click", () => authenticate(true));
    $("logout").addEventListener("click", () => logOut(""));
    $("new-chat").addEventListener("click", newChat);
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      submit();
    });
    $("message").addEventListener("keydown", onKey);
    $("stop").addEventListener("click", () => state.controller && state.controller.abort());
    $("toggle-sessions").addEventListener("click", () => {
      const open = $("sessions").classList.toggle("open");
      $("toggle-sessions").setAttribute("aria-expanded", String(open));
    });
    $("mem-list").addEventListener("click", () => sendText("what do you remember?"));
    $("mem-remember").addEventListener("click", () => prefill("remember that "));
    $("mem-forget").addEventListener("click", () => prefill("forget "));
  }

  function onKey(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === "Escape" && state.controller) {
      state.controller.abort();
    }
  }

  function prefill(text) {
    $("message").value = text;
    $("message").focus();
    closeSessionsPanel();
  }

  function sendText(text) {
    if (state.controller) return;
    $("message").value = text;
    closeSessionsPanel();
    submit();
  }

  wire();
  loadEngine();
  if (state.token) showChat();
  else showAuth("");
})();
