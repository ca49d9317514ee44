// Slack mrkdwn -> safe HTML. Everything from a message is escaped first; only the tags made here
// (strong, em, s, code, pre, a, span, br) ever reach innerHTML.
"use strict";

const EMOJI = {
  large_green_circle: "🟢", red_circle: "🔴", large_yellow_circle: "🟡", white_check_mark: "✅",
  heavy_check_mark: "✔️", x: "❌", warning: "⚠️", rotating_light: "🚨", fire: "🔥", pushpin: "📌",
  memo: "📝", bar_chart: "📊", chart_with_upwards_trend: "📈", chart_with_downwards_trend: "📉",
  calendar: "📅", tada: "🎉", trophy: "🏆", clock: "🕒", alarm_clock: "⏰", hourglass: "⌛",
  eyes: "👀", "+1": "👍", thumbsup: "👍", "-1": "👎", raised_hands: "🙌", bell: "🔔", zzz: "💤",
  small_green_triangle: "🔼", small_red_triangle_down: "🔻", small_red_triangle: "🔺", sparkles: "✨",
  mag: "🔍", wrench: "🔧", link: "🔗", page_facing_up: "📄", star: "⭐", muscle: "💪", rocket: "🚀",
  hammer_and_wrench: "🛠️", arrows_counterclockwise: "🔄", information_source: "ℹ️", bulb: "💡",
  checkered_flag: "🏁", pencil: "✏️", pencil2: "✏️", speech_balloon: "💬", busts_in_silhouette: "👥",
  bust_in_silhouette: "👤", white_square: "⬜", white_large_square: "⬜", ballot_box_with_check: "☑️", stopwatch: "⏱️", heavy_minus_sign: "➖", arrow_right: "➡️", leftwards_arrow_with_hook: "↩️",
};

function escapeHtml(text) {
  return String(text)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

// Slack escapes only these three in message text.
function unslack(text) {
  return String(text).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function emoji(name) {
  return Object.prototype.hasOwnProperty.call(EMOJI, name) ? EMOJI[name] : null;
}

const SAFE_URL = /^(https?:|mailto:)/i;

// One <...> token of Slack's syntax: channel, user, special mention, or link.
function renderToken(inner, lookup) {
  const [target, label] = splitOnce(inner, "|");
  if (target.startsWith("#C") || target.startsWith("#G") || target.startsWith("#D")) {
    const id = target.slice(1);
    const name = label || (lookup && lookup.channel(id)) || id;
    return `<a href="#" class="mention channel-link" data-channel="${escapeHtml(id)}">#${escapeHtml(unslack(name))}</a>`;
  }
  if (target.startsWith("@U") || target.startsWith("@W") || target.startsWith("@B")) {
    const id = target.slice(1);
    const name = (lookup && lookup.user(id)) || label || id;
    return `<span class="mention">@${escapeHtml(unslack(name))}</span>`;
  }
  if (target.startsWith("!")) {
    const special = target.slice(1).split("^")[0];
    if (["here", "channel", "everyone"].includes(special)) {
      return `<span class="mention">@${escapeHtml(special)}</span>`;
    }
    return escapeHtml(unslack(label || special));
  }
  const url = unslack(target);
  if (SAFE_URL.test(url)) {
    return `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(unslack(label || target))}</a>`;
  }
  return escapeHtml(unslack(label || target));  // not a web address: its text, never a link
}

function splitOnce(text, sep) {
  const at = text.indexOf(sep);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
}

// Bold/italic/strike need a non-word character (or the edge) on the outside, as in Slack.
function wrap(html, mark, tag) {
  const m = mark.replace(/[*~]/g, "\\$&");
  const pattern = new RegExp(`(^|[^\\w${m}])${m}(?=\\S)([^\\n]*?\\S)${m}(?=[^\\w${m}]|$)`, "g");
  return html.replace(pattern, (_, before, body) => `${before}<${tag}>${body}</${tag}>`);
}

/**
 * Slack mrkdwn to HTML that is safe to assign to innerHTML.
 * lookup: {user(id) -> name, channel(id) -> name}, optional.
 */
function mrkdwnToHtml(text, lookup) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let raw = String(text == null ? "" : text).replace(/\u0000/g, "");
  raw = raw.replace(/<([^<>\n]*)>/g, (_, inner) => hold(renderToken(inner, lookup)));
  let html = escapeHtml(unslack(raw));
  html = html.replace(/```\n?([\s\S]*?)```/g, (_, body) => hold(`<pre>${body}</pre>`));
  html = html.replace(/`([^`\n]+)`/g, (_, body) => hold(`<code>${body}</code>`));
  html = html.replace(/:([a-z0-9_+-]+):/g, (whole, name) => emoji(name) || whole);
  html = wrap(html, "*", "strong");
  html = wrap(html, "_", "em");
  html = wrap(html, "~", "s");
  html = html.replace(/^&gt; ?(.*)$/gm, '<span class="quote">$1</span>');
  html = html.replace(/\n/g, "<br>");
  // Held pieces may hold others (a link inside code is shown as a link, like Slack does).
  for (let i = 0; i < 3 && html.includes("\u0000"); i++) {
    html = html.replace(/\u0000(\d+)\u0000/g, (_, n) => held[Number(n)]);
  }
  return html;
}

function plainToHtml(text) {
  return escapeHtml(text == null ? "" : text).replace(/:([a-z0-9_+-]+):/g, (whole, name) => emoji(name) || whole)
    .replace(/\n/g, "<br>");
}

if (typeof module !== "undefined") {
  module.exports = { mrkdwnToHtml, plainToHtml, escapeHtml, emoji };
}
