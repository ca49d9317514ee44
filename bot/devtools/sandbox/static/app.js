// The sandbox page: renders /api/state like a Slack client and acts through /api/<action>.
// DOM is built with textContent everywhere; only mrkdwnToHtml/plainToHtml output (escaped) uses innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const page = {
  state: null,
  me: localStorage.getItem("sandbox.me") || "U0ALICE",
  current: localStorage.getItem("sandbox.current") || null, // channel id, or "home"
  thread: null, // ts of the open thread
  modalKey: null, // what the modal shows now, so typing is not lost on a refresh
  seen: JSON.parse(localStorage.getItem("sandbox.seen") || "{}"),
  busy: 0,
};

// --- small DOM helpers -------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "html") el.innerHTML = value; // only ever escaped HTML from mrkdwn.js
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function toast(text, kind = "info") {
  const item = h("div", { class: `toast toast-${kind}`, text });
  $("toasts").append(item);
  while ($("toasts").childElementCount > 2) $("toasts").firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 3000);
}

async function api(action, body) {
  page.busy++;
  document.body.classList.add("busy");
  try {
    const response = await fetch(`/api/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: page.me, ...body }),
    });
    const result = await response.json();
    if (!result.ok && !result.errors) toast(result.error || `failed (${response.status})`, "error");
    return result;
  } catch (err) {
    toast(`The sandbox did not answer: ${err}`, "error");
    return { ok: false };
  } finally {
    page.busy--;
    if (!page.busy) document.body.classList.remove("busy");
  }
}

// --- lookups -------------------------------------------------------------------------------

const ws = () => page.state.workspace;
const userName = (id) => (ws().users.find((u) => u.id === id) || {}).name;
const channelById = (id) => ws().channels.find((c) => c.id === id);
const lookup = {
  user: (id) => userName(id),
  channel: (id) => (channelById(id) || {}).name,
};
const md = (text) => mrkdwnToHtml(text, lookup);
const textHtml = (obj) => (!obj ? "" : obj.type === "mrkdwn" ? md(obj.text) : plainToHtml(obj.text));

function visibleChannels() {
  return ws().channels.filter((c) => !c.is_im && !c.is_archived)
    .sort((a, b) => a.name.localeCompare(b.name));
}
function myDm() {
  return ws().channels.find((c) => c.is_im && c.im_user === page.me);
}
function isMember(channel) {
  return channel && channel.members.includes(page.me);
}
function messagesOf(channelId) {
  return ws().messages[channelId] || [];
}
function formatTime(ts) {
  const date = new Date(parseFloat(ts) * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// --- state and live updates ------------------------------------------------------------------

let refreshTimer = null;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 40);
}

async function refresh() {
  const response = await fetch("/api/state");
  page.state = await response.json();
  render();
}

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("hello", () => {
    $("live").textContent = "live";
    $("live").className = "live live-on";
    scheduleRefresh();
  });
  events.addEventListener("change", scheduleRefresh);
  events.onerror = () => {
    $("live").textContent = "reconnecting…";
    $("live").className = "live live-off";
  };
}

// --- rendering -------------------------------------------------------------------------------

function render() {
  if (!page.state) return;
  if (!page.current || (page.current !== "home" && !channelById(page.current))) {
    const first = visibleChannels().find((c) => c.name.startsWith("inc-")) || visibleChannels()[0];
    page.current = first ? first.id : "home";
  }
  renderPeople();
  renderSidebar();
  renderConversation();
  renderThread();
  renderModal();
  renderControls();
  document.body.dataset.ready = "true";
}

function renderPeople() {
  const select = $("me");
  if (select.options.length) return;
  for (const person of page.state.people) {
    select.append(h("option", { value: person.id, text: `${person.name} (${person.real_name})` }));
  }
  select.value = page.me;
}

function navButton(id, label, icon, unread) {
  const active = page.current === id;
  return h("li", {},
    h("button", {
      type: "button", class: `nav-item${active ? " active" : ""}${unread ? " unread" : ""}`,
      "aria-current": active ? "page" : null, dataset: { target: id }, onclick: () => select(id),
    }, h("span", { class: "nav-icon", "aria-hidden": "true", text: icon }), label,
    unread ? h("span", { class: "visually-hidden", text: " (new messages)" }) : null));
}

function unread(channelId) {
  return channelId !== page.current && messagesOf(channelId).length > (page.seen[channelId] || 0);
}

function renderSidebar() {
  $("channel-list").replaceChildren(...visibleChannels().map((c) =>
    navButton(c.id, c.name, c.is_private ? "🔒" : "#", unread(c.id))));
  const dm = myDm();
  $("dm-list").replaceChildren(dm ? navButton(dm.id, "postmortem-bot", "●", unread(dm.id))
    : h("li", { class: "empty-note", text: "No messages from the bot yet" }));
  $("home-link").classList.toggle("active", page.current === "home");
}

function select(target) {
  page.current = target;
  page.thread = null;
  localStorage.setItem("sandbox.current", target);
  if (target === "home") api("home", {});
  render();
  $("composer-input").focus();
}

function renderConversation() {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  if (page.current === "home") {
    $("conversation-title").textContent = "postmortem-bot · Home";
    $("conversation-topic").textContent = "The App Home tab, as the bot published it for you";
    const home = ws().home[page.me];
    box.replaceChildren(home ? h("div", { class: "home-view" }, renderBlocks(home.blocks, { view: home }))
      : h("p", { class: "empty-note", text: "The bot has not published an App Home for you." }));
    $("composer").hidden = true;
    $("join-bar").hidden = true;
    return;
  }
  const channel = channelById(page.current);
  $("conversation-title").textContent = channel.is_im ? "postmortem-bot" : `#${channel.name}`;
  $("conversation-topic").textContent = channel.is_im ? "Direct messages with the bot"
    : `${channel.members.length} members`;
  const items = messagesOf(channel.id).filter((m) => !m.thread_ts || m.thread_ts === m.ts
    || m.subtype === "thread_broadcast");
  const ephemerals = ws().ephemerals.filter((e) => e.channel === channel.id && e.to_user === page.me);
  const all = [...items.map((m) => ({ m, eph: false })), ...ephemerals.map((m) => ({ m, eph: true }))]
    .sort((a, b) => parseFloat(a.m.ts) - parseFloat(b.m.ts));
  box.replaceChildren(...(all.length ? all.map(({ m, eph }) => renderMessage(m, channel, { ephemeral: eph }))
    : [h("p", { class: "empty-note", text: "No messages yet." })]));
  page.seen[channel.id] = messagesOf(channel.id).length;
  localStorage.setItem("sandbox.seen", JSON.stringify(page.seen));
  if (atBottom || box.dataset.channel !== channel.id) box.scrollTop = box.scrollHeight;
  box.dataset.channel = channel.id;
  const member = isMember(channel);
  $("composer").hidden = !member;
  $("join-bar").hidden = member;
  $("join-text").textContent = `You are not a member of #${channel.name}.`;
  $("composer-input").placeholder = channel.is_im ? "Message postmortem-bot, or /postmortem …"
    : `Message #${channel.name}, or /postmortem …`;
}

function renderMessage(m, channel, { ephemeral = false, inThread = false } = {}) {
  const isBot = Boolean(m.bot_id);
  const author = isBot ? "postmortem-bot" : userName(m.user) || m.user || "someone";
  const replies = inThread ? [] : messagesOf(channel.id).filter((r) => r.thread_ts === m.ts && r.ts !== m.ts);
  const body = h("div", { class: "message-body" });
  const useBlocks = (m.blocks || []).some((b) => b.type !== "rich_text");
  if (useBlocks) body.append(renderBlocks(m.blocks, { channel, message: m, ephemeral }));
  else if (m.text) body.append(h("div", { class: "mrkdwn", html: md(m.text) }));
  for (const file of m.files || []) body.append(renderFile(file));
  if (m.edited) body.append(h("span", { class: "edited", text: "(edited)" }));

  const reactions = h("div", { class: "reactions" }, (m.reactions || []).map((r) => {
    const mine = r.users.includes(page.me);
    return h("button", {
      type: "button", class: `reaction${mine ? " mine" : ""}`, "aria-pressed": mine ? "true" : "false",
      "aria-label": `${r.name} reaction, ${r.count}`, title: `:${r.name}: by ${r.users.map(userName).join(", ")}`,
      onclick: () => !mine && react(channel, m, r.name),
    }, emoji(r.name) || `:${r.name}:`, " ", String(r.count));
  }));

  const tools = ephemeral ? null : h("div", { class: "message-tools" },
    h("button", {
      type: "button", class: "icon-btn", title: "Pin to the timeline (📌 reaction)",
      "aria-label": "Add a pushpin reaction", onclick: () => react(channel, m, "pushpin"),
    }, "📌"),
    inThread ? null : h("button", {
      type: "button", class: "icon-btn", title: "Reply in thread", "aria-label": "Reply in thread",
      onclick: () => openThread(m.ts),
    }, "💬"));

  return h("article", {
    class: `message${ephemeral ? " ephemeral" : ""}${isBot ? " from-bot" : ""}${m.subtype === "channel_join" ? " system" : ""}`,
    dataset: { ts: m.ts }, "aria-label": `${author} at ${formatTime(m.ts)}`,
  },
  h("div", { class: "avatar", "aria-hidden": "true", text: author[0].toUpperCase() }),
  h("div", { class: "message-main" },
    h("div", { class: "message-meta" },
      h("strong", { class: "author", text: author }),
      isBot ? h("span", { class: "badge", text: "APP" }) : null,
      h("time", { class: "time", text: formatTime(m.ts) }),
      ephemeral ? h("span", { class: "only-you", text: "Only visible to you" }) : null),
    body,
    (m.reactions || []).length ? reactions : null,
    replies.length ? h("button", {
      type: "button", class: "replies-link", onclick: () => openThread(m.ts),
    }, `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`) : null),
  tools);
}

function renderFile(file) {
  const url = `/files/${encodeURIComponent(file.id)}`;
  if ((file.mimetype || "").startsWith("image/")) {
    return h("figure", { class: "file file-image" },
      h("a", { href: url, target: "_blank", rel: "noopener" }, h("img", { src: url, alt: file.title || file.name })),
      h("figcaption", { text: file.title || file.name }));
  }
  const preview = h("pre", { class: "file-preview", hidden: true });
  const toggle = h("button", {
    type: "button", class: "btn btn-small", "aria-expanded": "false",
    onclick: async () => {
      if (preview.hidden && !preview.textContent) {
        preview.textContent = await (await fetch(url)).text();
      }
      preview.hidden = !preview.hidden;
      toggle.setAttribute("aria-expanded", String(!preview.hidden));
      toggle.textContent = preview.hidden ? "Preview" : "Hide";
    },
  }, "Preview");
  return h("div", { class: "file file-doc" },
    h("div", { class: "file-row" },
      h("span", { class: "file-icon", "aria-hidden": "true", text: "📄" }),
      h("a", { href: url, target: "_blank", rel: "noopener", text: file.name }),
      h("span", { class: "file-size", text: `${Math.max(1, Math.round(file.size / 1024))} KB` }),
      toggle),
    preview);
}

// --- Block Kit -------------------------------------------------------------------------------

// ctx: {channel, message, ephemeral} for a message; {view, form} for a modal or the App Home.
function renderBlocks(blocks, ctx) {
  return h("div", { class: "blocks" }, (blocks || []).map((b) => renderBlock(b, ctx)));
}

function renderBlock(block, ctx) {
  switch (block.type) {
    case "header":
      return h("h3", { class: "block-header", html: plainToHtml(block.text.text) });
    case "section": {
      const el = h("div", { class: "block-section" });
      const main = h("div", { class: "section-main" });
      if (block.text) main.append(h("div", { class: "mrkdwn", html: textHtml(block.text) }));
      if (block.fields) {
        main.append(h("div", { class: "fields" }, block.fields.map((f) => h("div", { class: "field mrkdwn", html: textHtml(f) }))));
      }
      el.append(main);
      if (block.accessory) el.append(renderElement(block.accessory, block, ctx));
      return el;
    }
    case "divider":
      return h("hr", { class: "block-divider" });
    case "context":
      return h("div", { class: "block-context" }, (block.elements || []).map((e) =>
        e.type === "image" ? h("img", { src: e.image_url, alt: e.alt_text, class: "context-image" })
          : h("span", { class: "mrkdwn", html: textHtml(e) })));
    case "actions":
      return h("div", { class: "block-actions" }, (block.elements || []).map((e) => renderElement(e, block, ctx)));
    case "image":
      return h("figure", { class: "block-image" },
        h("img", { src: block.image_url, alt: block.alt_text || "" }),
        block.title ? h("figcaption", { text: block.title.text }) : null);
    case "input":
      return renderInput(block, ctx);
    case "rich_text":
      return h("div", { class: "mrkdwn", html: md(ctx.message ? ctx.message.text : "") });
    default:
      return h("div", { class: "block-unknown", text: `[${block.type} block]` });
  }
}

function renderElement(element, block, ctx) {
  if (element.type === "button") {
    const style = element.style === "primary" ? " btn-primary" : element.style === "danger" ? " btn-danger" : "";
    return h("button", {
      type: "button", class: `btn${style}`, dataset: { actionId: element.action_id },
      onclick: () => clickButton(element, block, ctx),
    }, h("span", { html: plainToHtml(element.text.text) }));
  }
  if (element.type === "image") {
    return h("img", { src: element.image_url, alt: element.alt_text, class: "accessory-image" });
  }
  const label = element.placeholder ? element.placeholder.text : element.type;
  return h("span", { class: "element-unsupported", title: "Not modelled on this page", text: `[${label}]` });
}

async function clickButton(element, block, ctx) {
  if (element.url) window.open(element.url, "_blank", "noopener");
  if (ctx.view) { // a modal (what was typed goes first) or the App Home
    await api("view/action", {
      view_id: ctx.view.id, action_id: element.action_id, block_id: block.block_id,
      values: ctx.form ? collectValues(ctx.form) : {},
    });
  } else if (ctx.message) {
    await api("click", {
      channel: ctx.channel.id, ts: ctx.message.ts, action_id: element.action_id, value: element.value ?? null,
    });
  }
}

async function react(channel, message, name) {
  if (!isMember(channel)) {
    toast(`Join #${channel.name} to react.`, "error");
    return;
  }
  await api("react", { channel: channel.id, ts: message.ts, name });
}

// --- modal ----------------------------------------------------------------------------------

function topView() {
  const stack = ws().view_stacks[page.me] || [];
  return stack.length ? ws().views[stack[stack.length - 1]] : null;
}

function renderModal() {
  const view = topView();
  const errors = view ? ws().view_errors[view.id] || {} : {};
  const key = view ? JSON.stringify([view.id, view.hash, errors]) : null;
  if (key === page.modalKey) return;
  const wasOpen = page.modalKey !== null;
  page.modalKey = key;
  const backdrop = $("modal-backdrop");
  if (!view) {
    backdrop.hidden = true;
    $("modal").replaceChildren();
    if (wasOpen) $("composer-input").focus();
    return;
  }
  const form = h("form", { class: "modal-form", novalidate: true });
  const ctx = { view, form, errors };
  form.append(h("div", { class: "modal-body" }, renderBlocks(view.blocks, ctx)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitModal(view, form);
  });
  const footer = h("div", { class: "modal-footer" },
    h("button", { type: "button", class: "btn", onclick: () => closeModal(view) },
      view.close ? view.close.text : "Cancel"),
    view.submit ? h("button", { type: "submit", class: "btn btn-primary", text: view.submit.text }) : null);
  form.append(footer);
  $("modal").replaceChildren(
    h("div", { class: "modal-header" },
      h("h2", { id: "modal-title", html: plainToHtml(view.title.text) }),
      h("button", { type: "button", class: "icon-btn", "aria-label": "Close", onclick: () => closeModal(view) }, "✕")),
    form);
  backdrop.hidden = false;
  const firstError = Object.keys(errors)[0];
  const target = (firstError && form.querySelector(`[data-block="${CSS.escape(firstError)}"]`))
    || form.querySelector("input, textarea, select");
  if (target) target.focus();
}

function renderInput(block, ctx) {
  const el = block.element || {};
  const id = `in-${block.block_id}-${el.action_id}`;
  const value = ((ws().views[ctx.view.id] || ctx.view).state.values[block.block_id] || {})[el.action_id] || {};
  const error = (ctx.errors || {})[block.block_id];
  const common = {
    id, name: id, dataset: { block: block.block_id, action: el.action_id, type: el.type },
    "aria-invalid": error ? "true" : null, "aria-describedby": error ? `${id}-error` : block.hint ? `${id}-hint` : null,
  };
  let control;
  switch (el.type) {
    case "plain_text_input":
    case "email_text_input":
    case "url_text_input":
    case "number_input":
      control = el.multiline
        ? h("textarea", { ...common, rows: 3, placeholder: el.placeholder ? el.placeholder.text : null, maxlength: el.max_length || null })
        : h("input", {
          ...common, type: { email_text_input: "email", url_text_input: "url", number_input: "number" }[el.type] || "text",
          placeholder: el.placeholder ? el.placeholder.text : null, maxlength: el.max_length || null,
        });
      control.value = value.value || "";
      break;
    case "static_select":
    case "radio_buttons": {
      const options = [...(el.options || []), ...(el.option_groups || []).flatMap((g) => g.options)];
      control = h("select", common,
        h("option", { value: "", text: el.placeholder ? el.placeholder.text : "Choose…" }),
        options.map((o) => h("option", { value: o.value, text: o.text.text })));
      control.value = value.selected_option ? value.selected_option.value : "";
      break;
    }
    case "users_select":
      control = h("select", common,
        h("option", { value: "", text: el.placeholder ? el.placeholder.text : "Choose someone…" }),
        page.state.people.map((p) => h("option", { value: p.id, text: `${p.name} (${p.real_name})` })));
      control.value = value.selected_user || "";
      break;
    case "datepicker":
      control = h("input", { ...common, type: "date" });
      control.value = value.selected_date || "";
      break;
    case "timepicker":
      control = h("input", { ...common, type: "time" });
      control.value = value.selected_time || "";
      break;
    case "checkboxes": {
      const chosen = new Set((value.selected_options || []).map((o) => o.value));
      control = h("fieldset", { ...common, class: "checkboxes", id: null },
        h("legend", { class: "visually-hidden", html: plainToHtml(block.label.text) }),
        (el.options || []).map((o, i) => {
          const boxId = `${id}-${i}`;
          const box = h("input", { type: "checkbox", id: boxId, value: o.value, checked: chosen.has(o.value) || null });
          return h("div", { class: "checkbox" }, box,
            h("label", { for: boxId, html: textHtml(o.text) }),
            o.description ? h("div", { class: "hint", html: textHtml(o.description) }) : null);
        }));
      break;
    }
    default:
      control = h("span", { class: "element-unsupported", text: `[${el.type} input]` });
  }
  return h("div", { class: `input-block${error ? " has-error" : ""}`, dataset: { blockId: block.block_id } },
    el.type === "checkboxes" ? h("div", { class: "input-label", html: plainToHtml(block.label.text) })
      : h("label", { for: id, class: "input-label" }, h("span", { html: plainToHtml(block.label.text) }),
        block.optional ? h("span", { class: "optional", text: " (optional)" }) : null),
    control,
    block.hint ? h("div", { class: "hint", id: `${id}-hint`, html: plainToHtml(block.hint.text) }) : null,
    error ? h("div", { class: "input-error", id: `${id}-error`, role: "alert", text: error }) : null);
}

// {block_id: {action_id: value}} as the sandbox's fill_view takes it.
function collectValues(form) {
  const values = {};
  for (const control of form.querySelectorAll("[data-block][data-action]")) {
    const { block, action, type } = control.dataset;
    let value;
    if (type === "checkboxes") {
      value = [...control.querySelectorAll("input[type=checkbox]:checked")].map((b) => b.value);
    } else if (type.endsWith("_text_input") || type === "number_input") {
      value = control.value;
    } else {
      value = control.value || null;
    }
    (values[block] = values[block] || {})[action] = value;
  }
  return values;
}

async function submitModal(view, form) {
  const result = await api("view/submit", { view_id: view.id, values: collectValues(form) });
  if (result.ok) toast("Submitted", "ok");
}

async function closeModal(view) {
  await api("view/close", { view_id: view.id });
}

// --- thread ---------------------------------------------------------------------------------

function openThread(ts) {
  page.thread = ts;
  renderThread();
  $("thread-input").focus();
}

function renderThread() {
  const pane = $("thread");
  const channel = page.current !== "home" ? channelById(page.current) : null;
  const parent = channel && page.thread && messagesOf(channel.id).find((m) => m.ts === page.thread);
  if (!parent) {
    pane.hidden = true;
    return;
  }
  pane.hidden = false;
  $("thread-title").textContent = `Thread in #${channel.is_im ? "postmortem-bot" : channel.name}`;
  const replies = messagesOf(channel.id).filter((m) => m.thread_ts === parent.ts && m.ts !== parent.ts);
  $("thread-messages").replaceChildren(renderMessage(parent, channel, { inThread: true }),
    h("div", { class: "thread-divider", text: `${replies.length} ${replies.length === 1 ? "reply" : "replies"}` }),
    ...replies.map((m) => renderMessage(m, channel, { inThread: true })));
  $("thread-composer").hidden = !isMember(channel);
}

// --- controls -------------------------------------------------------------------------------

function renderControls() {
  const incidents = page.state.pagerduty;
  $("pagerduty-control").hidden = incidents === null;
  if (incidents !== null) {
    $("pd-incidents").replaceChildren(...[...incidents].reverse().map((i) => h("li", { class: "pd-incident" },
      h("div", { class: "pd-title" }, h("span", { class: `status status-${i.status}`, text: i.status }),
        ` #${i.number} ${i.title}`),
      h("div", { class: "pd-actions" },
        h("button", {
          type: "button", class: "btn btn-small", disabled: i.status !== "triggered" || null,
          "aria-label": `Acknowledge incident ${i.number}`, onclick: () => pagerduty("acknowledge", i.id),
        }, "Acknowledge"),
        h("button", {
          type: "button", class: "btn btn-small", disabled: i.status === "resolved" || null,
          "aria-label": `Resolve incident ${i.number}`, onclick: () => pagerduty("resolve", i.id),
        }, "Resolve")))));
  }
  const jobs = $("clock-jobs");
  if (jobs.childElementCount !== page.state.jobs.length) {
    jobs.replaceChildren(...page.state.jobs.map((job) => h("button", {
      type: "button", class: "btn btn-block", dataset: { job: job.name }, onclick: () => runJob(job.name),
    }, job.label)));
  }
  $("clock-control").hidden = page.state.jobs.length === 0;
}

async function pagerduty(action, incidentId, extra = {}) {
  const result = await api("pagerduty", { action, incident_id: incidentId, ...extra });
  if (result.ok) toast(`PagerDuty sent ${result.webhook.event_type}; the bot answered ${result.webhook.status}`, "ok");
}

async function runJob(name) {
  const result = await api("clock", { job: name });
  if (result.ok) toast(result.said, "ok");
}

// --- composer and keyboard -----------------------------------------------------------------

function submitOnEnter(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

async function send(text, threadTs) {
  const channel = channelById(page.current);
  if (!channel || !text.trim()) return false;
  const result = await api("send", { channel: channel.id, text, thread_ts: threadTs || null });
  return result.ok;
}

function wire() {
  $("me").addEventListener("change", (event) => {
    page.me = event.target.value;
    localStorage.setItem("sandbox.me", page.me);
    page.modalKey = undefined;
    if (page.current === "home") api("home", {});
    render();
  });
  submitOnEnter($("composer-input"), $("composer"));
  submitOnEnter($("thread-input"), $("thread-composer"));
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("composer-input");
    const text = input.value;
    if (await send(text, null)) input.value = "";
  });
  $("thread-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("thread-input");
    if (await send(input.value, page.thread)) input.value = "";
  });
  $("join-button").addEventListener("click", async () => {
    await api("join", { channel: page.current });
    $("composer-input").focus();
  });
  $("home-link").addEventListener("click", () => select("home"));
  $("thread-close").addEventListener("click", () => {
    page.thread = null;
    renderThread();
  });
  $("pd-trigger").addEventListener("submit", (event) => {
    event.preventDefault();
    pagerduty("trigger", null, { title: $("pd-title").value, service: $("pd-service").value });
  });
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.channel-link");
    if (link) {
      event.preventDefault();
      select(link.dataset.channel);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const view = !$("modal-backdrop").hidden && topView();
    if (view) {
      event.preventDefault();
      closeModal(view);
    } else if (page.thread) {
      page.thread = null;
      renderThread();
      $("composer-input").focus();
    }
  });
  // Keep Tab inside the open modal.
  $("modal").addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const focusable = [...$("modal").querySelectorAll("button, input, select, textarea, a[href]")]
      .filter((el) => !el.disabled);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
}

wire();
connect();
refresh();
