// Safewell demo page: plays citizens, officers and staff against the emulated Telegram.
// It only shows chats (transcripts from the emulator's control API, proxied by bot/demo.py), so
// it needs no change when the bot learns new features. Every text is put into the page as DOM
// text nodes; the bot's formatting comes from Telegram entities, never from HTML strings.

const EXAMPLE_CITY = { latitude: 31.2304, longitude: 121.4737 }; // fictional Example City centre
const EVENTS_TIMEOUT = 25;

// ------------------------------------------------------------------ HTTP helpers

async function api(path, body) {
  const init = body === undefined
    ? { method: "GET" }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let payload;
  try {
    payload = await response.json();
  } catch {
    throw new Error(`HTTP ${response.status}`);
  }
  if (!payload.ok) throw new Error(payload.error || `HTTP ${response.status}`);
  return payload.result;
}

const emu = (path, body) => api(`/api/emu/${path}`, body);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function toast(text, kind = "info") {
  const box = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", text });
  document.getElementById("toasts").append(box);
  setTimeout(() => box.remove(), kind === "alert" ? 8000 : 4000);
}

async function act(promise) {
  try {
    return await promise;
  } catch (error) {
    toast(String(error.message || error), "error");
    return undefined;
  }
}

// ------------------------------------------------------------------ Telegram entities → DOM

function safeUrl(url) {
  try {
    const parsed = new URL(url, "https://invalid.example/");
    if (["http:", "https:", "mailto:", "tel:"].includes(parsed.protocol)) return parsed.href;
  } catch {
    /* not a URL */
  }
  return null;
}

function entityElement(entity, slice) {
  switch (entity.type) {
    case "bold": return el("b");
    case "italic": return el("i");
    case "underline": return el("u");
    case "strikethrough": return el("s");
    case "spoiler": return el("span", { class: "spoiler", title: "spoiler (click)", onclick: (e) => e.currentTarget.classList.toggle("shown") });
    case "code": return el("code");
    case "pre": return el("pre", { "data-language": entity.language });
    case "blockquote": return el("blockquote");
    case "expandable_blockquote": return el("blockquote", { class: "expandable" });
    case "text_link": {
      const href = safeUrl(entity.url);
      return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span", { class: "link" });
    }
    case "url": {
      const href = safeUrl(/^[a-z]+:/i.test(slice) ? slice : `https://${slice}`);
      return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span");
    }
    case "email": return el("a", { href: safeUrl(`mailto:${slice}`) });
    case "phone_number": return el("a", { href: safeUrl(`tel:${slice}`) });
    case "bot_command": return el("span", { class: "command", "data-command": slice, title: "click to send" });
    case "mention":
    case "hashtag":
    case "cashtag":
    case "text_mention": return el("span", { class: "mention" });
    default: return el("span");
  }
}

// Entities nest (Telegram's HTML only produces proper nesting); one that crosses its parent's
// end is clipped, which keeps every character of the text.
function appendEntities(parent, text, start, end, entities) {
  let pos = start;
  let i = 0;
  while (i < entities.length) {
    const entity = entities[i];
    const from = Math.max(entity.offset, pos);
    const to = Math.min(entity.offset + entity.length, end);
    if (to <= from) { i += 1; continue; }
    if (from > pos) parent.append(text.slice(pos, from));
    const inner = [];
    let j = i + 1;
    while (j < entities.length && entities[j].offset < to) { inner.push(entities[j]); j += 1; }
    const node = entityElement(entity, text.slice(entity.offset, entity.offset + entity.length));
    appendEntities(node, text, from, to, inner);
    parent.append(node);
    pos = to;
    i = j;
  }
  if (end > pos) parent.append(text.slice(pos, end));
}

function formatted(text, entities) {
  const box = el("div", { class: "text" });
  // JavaScript strings count UTF-16 code units, the unit of Telegram's entity offsets.
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  appendEntities(box, text, 0, text.length, sorted);
  return box;
}

// ------------------------------------------------------------------ messages

function timeOf(date) {
  const d = new Date(date * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

function serviceText(m) {
  if (m.forum_topic_created) return `Topic “${m.forum_topic_created.name}” created`;
  if (m.forum_topic_edited) return m.forum_topic_edited.name ? `Topic renamed to “${m.forum_topic_edited.name}”` : "Topic edited";
  if (m.forum_topic_closed) return "🔒 Topic closed";
  if (m.forum_topic_reopened) return "🔓 Topic reopened";
  if (m.pinned_message) {
    const body = m.pinned_message.text || m.pinned_message.caption || "a message";
    return `📌 Pinned: ${body.length > 60 ? `${body.slice(0, 60)}…` : body}`;
  }
  return "service message";
}

function mediaOf(m) {
  const parts = [];
  if (m.photo && m.photo.length) {
    const largest = m.photo[m.photo.length - 1];
    parts.push(el("img", { class: "photo", src: `/api/files/${encodeURIComponent(largest.file_id)}`, alt: "photo", loading: "lazy" }));
  }
  if (m.sticker) parts.push(el("div", { class: "sticker", text: m.sticker.emoji || "🖼️" }));
  if (m.document) {
    parts.push(el("a", { class: "file", href: `/api/files/${encodeURIComponent(m.document.file_id)}`, download: m.document.file_name || "file" },
      `📄 ${m.document.file_name || "document"}`));
  }
  if (m.voice) parts.push(el("div", { class: "file", text: `🎤 Voice message, ${m.voice.duration || 0} s` }));
  if (m.location) {
    parts.push(el("div", { class: "file", text: `📍 Location ${m.location.latitude.toFixed(4)}, ${m.location.longitude.toFixed(4)}` }));
  }
  if (m.contact) {
    const name = [m.contact.first_name, m.contact.last_name].filter(Boolean).join(" ");
    parts.push(el("div", { class: "file", text: `👤 ${name} · ${m.contact.phone_number}` }));
  }
  return parts;
}

function quoteOf(m, inTopic) {
  const target = m.reply_to_message;
  // Inside a topic every message "replies" to the topic's creation message; that is no quote.
  if (!target || target.forum_topic_created || (inTopic && target.message_id === m.message_thread_id)) return null;
  const who = target.from ? target.from.first_name : "";
  const body = target.text || target.caption || (target.photo ? "Photo" : "Message");
  return el("div", { class: "quote" }, el("strong", { text: who }), el("span", { text: body.slice(0, 80) }));
}

function inlineKeyboard(markup, onPress) {
  const rows = (markup && markup.inline_keyboard) || [];
  if (!rows.length) return null;
  const box = el("div", { class: "inline-keyboard" });
  for (const row of rows) {
    const line = el("div", { class: "kb-row" });
    for (const button of row) {
      let node;
      if (button.callback_data !== undefined) {
        node = el("button", { type: "button", class: "kb-btn", onclick: () => onPress(button) }, button.text);
      } else if (button.url && safeUrl(button.url)) {
        node = el("a", { class: "kb-btn", href: safeUrl(button.url), target: "_blank", rel: "noopener noreferrer" }, `${button.text} ↗`);
      } else if (button.copy_text) {
        node = el("button", { type: "button", class: "kb-btn", onclick: () => navigator.clipboard?.writeText(button.copy_text.text).then(() => toast("Copied")) }, button.text);
      } else {
        node = el("button", { type: "button", class: "kb-btn", disabled: true, title: "not emulated" }, button.text);
      }
      line.append(node);
    }
    box.append(line);
  }
  return box;
}

function renderEntry(entry, view) {
  const m = entry.message;
  if (entry.service) return el("div", { class: "service", text: serviceText(m) });
  const own = entry.sender_id === view.viewerId;
  const bubble = el("div", {
    class: `msg ${own ? "own" : "other"}${entry.from_bot ? " bot" : ""}`,
    "data-message-id": m.message_id,
    "data-from-bot": entry.from_bot ? "1" : "0",
  });
  if (view.showSender && !own) {
    const name = m.from ? [m.from.first_name, m.from.last_name].filter(Boolean).join(" ") : "";
    bubble.append(el("div", { class: `sender${entry.from_bot ? " is-bot" : ""}`, text: entry.from_bot ? `${name} · bot` : name }));
  }
  if (m.forward_origin) {
    const origin = m.forward_origin;
    const from = origin.sender_user ? origin.sender_user.first_name : origin.sender_user_name || origin.chat?.title || "hidden user";
    bubble.append(el("div", { class: "forwarded", text: `Forwarded from ${from}` }));
  }
  const quote = quoteOf(m, view.inTopic);
  if (quote) bubble.append(quote);
  bubble.append(...mediaOf(m));
  if (m.text !== undefined) bubble.append(formatted(m.text, m.entities));
  if (m.caption) bubble.append(formatted(m.caption, m.caption_entities));
  bubble.append(el("div", { class: "meta", text: `${m.edit_date ? "edited · " : ""}${timeOf(m.date)}` }));
  const keyboard = inlineKeyboard(m.reply_markup, (button) => view.press(m, button));
  return keyboard ? el("div", { class: `msg-wrap ${own ? "own" : "other"}` }, bubble, keyboard) : el("div", { class: `msg-wrap ${own ? "own" : "other"}` }, bubble);
}

function renderInto(container, entries, view) {
  const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
  const nodes = entries.filter((e) => !e.deleted).map((e) => renderEntry(e, view));
  if (!nodes.length) nodes.push(el("div", { class: "empty muted", text: view.emptyText || "No messages yet." }));
  container.replaceChildren(...nodes);
  if (nearBottom || view.forceScroll) container.scrollTop = container.scrollHeight;
}

// Clicking a /command in a message sends it, as in Telegram's apps.
function wireCommands(container, send) {
  container.addEventListener("click", (event) => {
    const target = event.target.closest(".command");
    if (target && container.contains(target)) send(target.dataset.command);
  });
}

function autoGrow(textarea, submit) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  textarea.addEventListener("input", () => {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, 140)}px`;
  });
}

// A small picture drawn here, so the demo ships no binary files.
async function samplePhoto() {
  const canvas = document.createElement("canvas");
  canvas.width = 320;
  canvas.height = 200;
  const g = canvas.getContext("2d");
  g.fillStyle = "#9cc3e6"; g.fillRect(0, 0, 320, 120);
  g.fillStyle = "#6b8f4e"; g.fillRect(0, 120, 320, 80);
  g.fillStyle = "#444"; g.fillRect(40, 60, 60, 60); g.fillRect(210, 40, 70, 80);
  g.fillStyle = "#fff"; g.font = "bold 18px sans-serif"; g.fillText("Example City (sample)", 60, 175);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  return base64(await blob.arrayBuffer());
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

// ------------------------------------------------------------------ a phone: private chat with the bot

class Phone {
  constructor(section, people, bot) {
    this.section = section;
    this.people = people;
    this.bot = bot;
    this.unread = new Set();
    this.transcript = [];
    this.tabs = section.querySelector(".tabs");
    const phone = section.querySelector(".phone");
    phone.append(document.getElementById("phone-template").content.cloneNode(true));
    this.messages = phone.querySelector(".messages");
    this.messages.dataset.testid = `${section.id}-messages`;
    this.sub = phone.querySelector(".chat-sub");
    phone.querySelector(".chat-name").textContent = bot.name;
    this.startBox = phone.querySelector(".start");
    this.replyKeyboard = phone.querySelector(".reply-keyboard");
    this.form = phone.querySelector(".composer");
    this.textarea = this.form.querySelector("textarea");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    autoGrow(this.textarea, () => this.submit());
    this.startBox.querySelector("button").addEventListener("click", () => this.send({ type: "text", text: "/start" }));
    phone.querySelector('[data-action="location"]').addEventListener("click", () => this.send({ type: "location", ...EXAMPLE_CITY }));
    phone.querySelector('[data-action="photo"]').addEventListener("click", async () => this.send({ type: "photo", data_base64: await samplePhoto() }));
    phone.querySelector('input[type="file"]').addEventListener("change", (event) => this.sendFile(event.target));
    wireCommands(this.messages, (command) => this.send({ type: "text", text: command }));
    this.typingTimer = null;
    this.renderTabs();
    this.select(people[0].id);
  }

  get person() { return this.people.find((p) => p.id === this.userId); }

  renderTabs() {
    this.tabs.replaceChildren(...this.people.map((p) => el("button", {
      type: "button",
      role: "tab",
      class: `tab${p.id === this.userId ? " active" : ""}${this.unread.has(p.id) ? " unread" : ""}`,
      "aria-selected": p.id === this.userId ? "true" : "false",
      "data-user-id": p.id,
      title: `${p.role}, Telegram user ${p.id}, app language ${p.language_code}`,
      onclick: () => this.select(p.id),
    }, p.name, p.role !== "citizen" ? el("span", { class: "role", text: p.role }) : null)));
  }

  add(person) {
    this.people.push(person);
    this.select(person.id);
  }

  select(userId) {
    this.userId = userId;
    this.unread.delete(userId);
    this.renderTabs();
    this.textarea.placeholder = `Message as ${this.person.name}`;
    this.sub.textContent = `bot · you are ${this.person.name}`;
    this.refresh(true);
  }

  async refresh(forceScroll = false) {
    const userId = this.userId;
    const entries = await act(emu(`chats/${userId}/transcript`));
    if (entries === undefined || userId !== this.userId) return;
    this.transcript = entries;
    renderInto(this.messages, entries, {
      viewerId: userId,
      showSender: false,
      forceScroll,
      emptyText: `${this.person.name} has not written to the bot yet. Press Start or type a message.`,
      press: (message, button) => this.press(message, button),
    });
    this.startBox.classList.toggle("hidden", entries.length > 0);
    this.renderReplyKeyboard(entries);
  }

  // The reply keyboard a user sees: the latest one the bot sent, until removed or used once.
  renderReplyKeyboard(entries) {
    let keyboard = null;
    for (const entry of entries) {
      if (entry.deleted) continue;
      if (entry.from_bot && entry.chat_keyboard) {
        keyboard = entry.chat_keyboard.keyboard ? entry.chat_keyboard : null;
      } else if (!entry.from_bot && keyboard && keyboard.one_time_keyboard) {
        keyboard = null;
      }
    }
    this.replyKeyboard.classList.toggle("hidden", !keyboard);
    if (!keyboard) { this.replyKeyboard.replaceChildren(); return; }
    this.replyKeyboard.replaceChildren(...keyboard.keyboard.map((row) => el("div", { class: "kb-row" },
      ...row.map((button) => {
        const b = typeof button === "string" ? { text: button } : button;
        return el("button", { type: "button", class: "kb-btn", onclick: () => this.replyButton(b) }, b.text);
      }))));
  }

  replyButton(button) {
    if (button.request_contact) {
      return this.send({ type: "contact", phone_number: `+000555${String(this.userId).padStart(4, "0")}`, first_name: this.person.name, user_id: this.userId });
    }
    if (button.request_location) return this.send({ type: "location", ...EXAMPLE_CITY });
    return this.send({ type: "text", text: button.text });
  }

  async submit() {
    const text = this.textarea.value.trim();
    if (!text) return;
    this.textarea.value = "";
    this.textarea.style.height = "auto";
    await this.send({ type: "text", text });
  }

  async send(body) {
    const sent = await act(emu(`users/${this.userId}/send`, body));
    if (sent) await this.refresh(true);
  }

  async sendFile(input) {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    const data_base64 = base64(await file.arrayBuffer());
    if (file.type.startsWith("image/")) await this.send({ type: "photo", data_base64 });
    else await this.send({ type: "document", data_base64, file_name: file.name, mime_type: file.type || "application/octet-stream" });
  }

  async press(message, button) {
    const query = await act(emu(`users/${this.userId}/press`, { message_id: message.message_id, data: button.callback_data }));
    if (query) pendingQueries.set(query.id, this);
  }

  typing() {
    this.sub.textContent = "typing…";
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { this.sub.textContent = `bot · you are ${this.person.name}`; }, 5000);
  }

  onEvent(chatId, event) {
    if (!this.people.some((p) => p.id === chatId)) return false;
    if (chatId === this.userId) {
      if (event.type === "chat_action") this.typing();
      else return true;
    } else if (event.type === "message" && event.from_bot) {
      this.unread.add(chatId);
      this.renderTabs();
    }
    return false;
  }
}

// ------------------------------------------------------------------ the officers' forum

class Forum {
  constructor(section, info) {
    this.section = section;
    this.chatId = info.forum.id;
    this.members = [...info.officers, ...info.admins];
    this.thread = null; // null: the General topic
    this.topics = [];
    this.transcript = [];
    this.unread = new Set();
    section.querySelector(".forum-title").textContent = info.forum.title;
    this.topicList = section.querySelector(".topics");
    this.head = section.querySelector(".thread-head");
    this.messages = section.querySelector(".messages");
    this.form = section.querySelector(".composer");
    this.writer = this.form.querySelector("select");
    this.writer.replaceChildren(...this.members.map((p) => el("option", { value: p.id }, `${p.name} (${p.role})`)));
    this.writer.addEventListener("change", () => this.refresh());
    this.textarea = this.form.querySelector("textarea");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    autoGrow(this.textarea, () => this.submit());
    wireCommands(this.messages, (command) => this.send(command));
    this.refresh(true);
  }

  get writerId() { return Number(this.writer.value); }

  async refresh(forceScroll = false) {
    const [topics, entries] = await Promise.all([act(emu(`chats/${this.chatId}/topics`)), act(emu(`chats/${this.chatId}/transcript`))]);
    if (topics === undefined || entries === undefined) return;
    this.topics = topics;
    this.transcript = entries;
    if (this.thread !== null && !topics.some((t) => t.message_thread_id === this.thread)) this.thread = null;
    this.renderTopics();
    const topic = this.topics.find((t) => t.message_thread_id === this.thread);
    this.head.replaceChildren(el("strong", { text: topic ? topic.name : "General" }));
    if (topic && topic.is_closed) this.head.append(el("span", { class: "badge", text: "closed" }));
    renderInto(this.messages, entries.filter((e) => (e.thread_id ?? null) === this.thread), {
      viewerId: this.writerId,
      showSender: true,
      inTopic: this.thread !== null,
      forceScroll,
      emptyText: this.thread === null ? "New cases open their own topics here." : "No messages in this topic.",
      press: (message, button) => this.press(message, button),
    });
  }

  renderTopics() {
    const item = (thread, name, closed) => el("button", {
      type: "button",
      class: `topic${thread === this.thread ? " active" : ""}${this.unread.has(thread) ? " unread" : ""}${closed ? " closed" : ""}`,
      "data-thread-id": thread ?? "general",
      onclick: () => { this.thread = thread; this.unread.delete(thread); this.refresh(true); },
    }, el("span", { class: "topic-name", text: name }), closed ? el("span", { class: "badge", text: "closed" }) : null);
    this.topicList.replaceChildren(
      item(null, "# General", false),
      ...[...this.topics].reverse().map((t) => item(t.message_thread_id, t.name, t.is_closed)),
    );
  }

  async submit() {
    const text = this.textarea.value.trim();
    if (!text) return;
    this.textarea.value = "";
    this.textarea.style.height = "auto";
    await this.send(text);
  }

  async send(text) {
    const body = { type: "text", text, chat_id: this.chatId };
    if (this.thread !== null) body.thread_id = this.thread;
    const sent = await act(emu(`users/${this.writerId}/send`, body));
    if (sent) await this.refresh(true);
  }

  async press(message, button) {
    const query = await act(emu(`users/${this.writerId}/press`, { message_id: message.message_id, data: button.callback_data, chat_id: this.chatId }));
    if (query) pendingQueries.set(query.id, this);
  }

  onEvent(chatId, event) {
    if (chatId !== this.chatId) return false;
    const thread = event.message ? (event.message.is_topic_message ? event.message.message_thread_id : null) : event.thread_id;
    if (event.type === "message" && thread !== undefined && thread !== this.thread) this.unread.add(thread);
    return true;
  }
}

// ------------------------------------------------------------------ live updates

const pendingQueries = new Map(); // callback query id → the pane that pressed

async function follow(panes, startCursor) {
  const status = document.getElementById("status");
  let cursor = startCursor;
  let timeout = 0; // the first call answers at once, so the page knows it is connected
  for (;;) {
    let events;
    try {
      events = await emu(`events?after=${cursor}&timeout=${timeout}`);
      timeout = EVENTS_TIMEOUT;
      status.textContent = "live";
      status.className = "status live";
    } catch {
      status.textContent = "reconnecting…";
      status.className = "status down";
      await sleep(2000);
      continue;
    }
    const dirty = new Set();
    for (const event of events) {
      cursor = Math.max(cursor, event.cursor);
      if (event.type === "callback_answer") {
        if (event.text) toast(event.text, event.show_alert ? "alert" : "info");
        pendingQueries.delete(event.callback_query_id);
        continue;
      }
      const chatId = event.chat_id ?? event.user_id;
      if (chatId === undefined) continue;
      for (const pane of panes) if (pane.onEvent(chatId, event)) dirty.add(pane);
    }
    await Promise.all([...dirty].map((pane) => pane.refresh()));
  }
}

async function main() {
  const info = await api("/api/demo");
  const state = await emu("state");
  const citizens = new Phone(document.getElementById("citizens"), info.citizens, info.bot);
  const staff = new Phone(document.getElementById("staff"), [...info.staffs, ...info.admins, ...info.officers], info.bot);
  const forum = new Forum(document.getElementById("forum"), info);

  const addButton = document.querySelector('[data-action="add-citizen"]');
  const addForm = document.querySelector(".add-citizen");
  addButton.addEventListener("click", () => {
    addForm.classList.toggle("hidden");
    if (!addForm.classList.contains("hidden")) addForm.elements.name.focus();
  });
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const person = await act(api("/api/citizens", {
      name: addForm.elements.name.value,
      language_code: addForm.elements.language_code.value,
    }));
    if (!person) return;
    addForm.reset();
    addForm.classList.add("hidden");
    citizens.add(person);
  });
  document.body.dataset.ready = "1";
  follow([citizens, staff, forum], state.cursor);
}

main().catch((error) => {
  toast(`The demo could not start: ${error.message || error}`, "error");
});
