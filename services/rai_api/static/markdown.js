/* A small markdown renderer of our own for untrusted text (model replies, stored messages).

   It never parses HTML: every node is made with createElement and filled with textContent, so a
   reply holding <img src=x onerror=...> or <script> shows those characters and runs nothing.
   Supported: paragraphs and line breaks, # headings, - and 1. lists, ``` code blocks, `code`,
   **bold**, *italic*, [links](https://...) and bare http(s) URLs. A link whose URL is not
   http: or https: (javascript:, data:, vbscript:, ...) is shown as plain text. No images: an
   image would be a request to another origin. */
"use strict";
(function () {
  const INLINE = new RegExp([
    "(`+)([\\s\\S]*?[^`])\\1(?!`)",                 // 1,2: code span
    "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*",            // 3: bold
    "\\*(?=[^\\s*])([^*]*?[^\\s*])\\*",              // 4: italic
    "\\[([^\\]\\n]+)\\]\\(([^()\\s]+)\\)",           // 5,6: link
    "(https?:\\/\\/[^\\s<>()\"']*[^\\s<>()\"'.,;:!?])" // 7: bare URL
  ].join("|"), "g");

  function el(tag, text) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* The URL as an absolute http(s) address, or null for any other scheme. */
  function safeHref(url) {
    let parsed;
    try {
      parsed = new URL(url, window.location.href);
    } catch (err) {
      return null;
    }
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  }

  function link(text, url, raw) {
    const href = safeHref(url);
    if (href === null) return document.createTextNode(raw);
    const a = el("a", text);
    a.href = href;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    return a;
  }

  function inline(text, parent) {
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > last) parent.append(text.slice(last, m.index));
      if (m[1] !== undefined) parent.append(el("code", m[2]));
      else if (m[3] !== undefined) inline(m[3], parent.appendChild(el("strong")));
      else if (m[4] !== undefined) inline(m[4], parent.appendChild(el("em")));
      else if (m[5] !== undefined) parent.append(link(m[5], m[6], m[0]));
      else parent.append(link(m[7], m[7], m[7]));
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.append(text.slice(last));
    return parent;
  }

  function paragraph(lines) {
    const p = el("p");
    lines.forEach((line, i) => {
      if (i > 0) p.append(el("br"));
      inline(line, p);
    });
    return p;
  }

  const BULLET = /^\s*[-*+]\s+(.*)$/;
  const NUMBER = /^\s*\d{1,9}[.)]\s+(.*)$/;
  const HEADING = /^(#{1,6})\s+(.*)$/;
  const FENCE = /^\s*```/;

  function list(lines, i, pattern, tag) {
    const node = el(tag);
    while (i < lines.length && pattern.test(lines[i])) {
      inline(lines[i].match(pattern)[1], node.appendChild(el("li")));
      i += 1;
    }
    return [node, i];
  }

  function code(lines, i) {
    const body = [];
    i += 1;
    while (i < lines.length && !FENCE.test(lines[i])) body.push(lines[i++]);
    const pre = el("pre");
    pre.append(el("code", body.join("\n")));
    return [pre, i + 1];
  }

  /* One block starting at lines[i]: [node, index after it]. */
  function block(lines, i) {
    const line = lines[i];
    if (FENCE.test(line)) return code(lines, i);
    const heading = line.match(HEADING);
    if (heading) return [inline(heading[2], el("h" + Math.min(6, heading[1].length + 2))), i + 1];
    if (BULLET.test(line)) return list(lines, i, BULLET, "ul");
    if (NUMBER.test(line)) return list(lines, i, NUMBER, "ol");
    const para = [];
    while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) && !HEADING.test(lines[i])
           && !BULLET.test(lines[i]) && !NUMBER.test(lines[i])) para.push(lines[i++]);
    return [paragraph(para), i];
  }

  /* `text` as a DocumentFragment of safe nodes. */
  function render(text) {
    const fragment = document.createDocumentFragment();
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      if (!lines[i].trim()) {
        i += 1;
        continue;
      }
      const [node, next] = block(lines, i);
      fragment.append(node);
      i = next;
    }
    return fragment;
  }

  window.RaiMarkdown = Object.freeze({ render, safeHref });
})();
