// The playground: one image per card, sent to the chosen task's route on this server, its answer drawn.
// Every address is relative to the page, so the page works under a proxy's path prefix too.
"use strict";

const KEY_STORAGE = "vision-api-key";
const BOX_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"];
const TASK_OF_ROUTE = { classify: "classify", detect: "detect", segment: "segment", explain: "classify" };

const $ = (selector) => document.querySelector(selector);
let models = [];

function chosenTask() {
  return document.querySelector("input[name=task]:checked").value;
}

function headers() {
  const key = $("#api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function say(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.error.code}: ${body.error.message}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadModels() {
  const response = await fetch("models", { headers: headers() });
  if (!response.ok) {
    say(`models: ${await errorText(response)}`, true);
    return;
  }
  models = (await response.json()).models;
  fillModelChoice();
  say(`${models.length} models loaded. Drop images to try them.`);
}

function canExplain(model) {
  const latest = model.versions.find((version) => version.version === model.latest);
  return Boolean(latest && latest.outputs.includes("heatmap"));
}

function fillModelChoice() {
  const route = chosenTask();
  const select = $("#model");
  const kept = select.value;
  select.replaceChildren(new Option("the task's default", ""));
  for (const model of models) {
    if (model.task !== TASK_OF_ROUTE[route] || (route === "explain" && !canExplain(model))) continue;
    const isDefault = model.default_for === model.task ? " (default)" : "";
    select.add(new Option(`${model.name} v${model.latest}${isDefault}`, model.name));
  }
  select.value = [...select.options].some((option) => option.value === kept) ? kept : "";
}

function query(route) {
  const params = new URLSearchParams();
  const model = $("#model").value;
  if (model) params.set("model", model);
  if (route === "segment") params.set("style", "overlay");
  if (route === "classify") params.set("top_k", "5");
  const text = params.toString();
  return text ? `${route}?${text}` : route;
}

function addMeta(card, term, value) {
  if (!value) return;
  const meta = card.querySelector(".meta");
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  meta.append(dt, dd);
}

function newCard(file) {
  const card = $("#result").content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  const photo = card.querySelector(".photo");
  photo.src = URL.createObjectURL(file);
  photo.alt = file.name;
  $("#results").prepend(card);
  return card;
}

function showBars(card, predictions) {
  const list = document.createElement("ol");
  list.className = "bars";
  for (const prediction of predictions) {
    const item = document.createElement("li");
    item.dataset.label = prediction.label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${(prediction.probability * 100).toFixed(1)}%`;
    const text = document.createElement("span");
    text.className = "bar-text";
    text.textContent = `${prediction.label} ${(prediction.probability * 100).toFixed(1)} %`;
    item.append(bar, text);
    list.append(item);
  }
  card.querySelector(".answer-text").append(list);
}

// Boxes are drawn on a canvas at least DRAW_SIDE pixels on its longer side, so a thumbnail's captions stay
// readable once the picture is shown large.
const DRAW_SIDE = 720;
const FONT_PX = 13;

function drawBoxes(card, result) {
  const photo = card.querySelector(".photo");
  const canvas = card.querySelector(".boxes");
  const draw = () => {
    const { width, height } = result.image;
    const scale = Math.max(1, DRAW_SIDE / Math.max(width, height));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const context = canvas.getContext("2d");
    context.lineWidth = 3;
    context.font = `${FONT_PX}px sans-serif`;
    context.textBaseline = "top";
    const textHeight = FONT_PX + 6;
    for (const found of result.detections) {
      const colour = BOX_COLOURS[found.class_id % BOX_COLOURS.length];
      const [left, top, right, bottom] = [found.box.x_min, found.box.y_min, found.box.x_max, found.box.y_max].map(
        (value) => value * scale,
      );
      context.strokeStyle = colour;
      context.strokeRect(left, top, right - left, bottom - top);
      const caption = `${found.label} ${found.score.toFixed(2)} · IoU ${found.iou.toFixed(2)}`;
      const textWidth = context.measureText(caption).width + 8;
      const x = Math.min(Math.max(0, left), Math.max(0, canvas.width - textWidth));
      const y = top >= textHeight ? top - textHeight : Math.min(bottom, canvas.height - textHeight);
      context.fillStyle = colour;
      context.fillRect(x, y, textWidth, textHeight);
      context.fillStyle = "#fff";
      context.fillText(caption, x + 4, y + 3);
    }
    canvas.dataset.boxes = String(result.detections.length);
  };
  if (photo.complete && photo.naturalWidth) draw();
  else photo.addEventListener("load", draw, { once: true });
  const list = document.createElement("ul");
  list.className = "detections";
  for (const found of result.detections) {
    const item = document.createElement("li");
    item.dataset.label = found.label;
    item.textContent = `${found.label}: score ${found.score.toFixed(2)}, IoU ${found.iou.toFixed(2)}`;
    list.append(item);
  }
  if (!result.detections.length) list.textContent = "Nothing found at the default threshold.";
  card.querySelector(".answer-text").append(list);
}

function showPicture(card, blob, caption) {
  const answer = card.querySelector(".answer");
  answer.src = URL.createObjectURL(blob);
  answer.alt = caption;
  card.classList.add("with-answer");
  const text = document.createElement("p");
  text.className = "caption";
  text.textContent = caption;
  card.querySelector(".answer-text").append(text);
}

async function send(file) {
  const route = chosenTask();
  const card = newCard(file);
  card.dataset.task = route;
  let response;
  try {
    response = await fetch(query(route), {
      method: "POST",
      headers: { ...headers(), "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
  } catch (error) {
    card.querySelector(".answer-text").textContent = `The service did not answer: ${error}`;
    card.classList.add("failed");
    return;
  }
  const name = response.headers.get("X-Model-Name");
  if (name) addMeta(card, "model", `${name} v${response.headers.get("X-Model-Version")}`);
  addMeta(card, "request id", response.headers.get("X-Request-ID"));
  addMeta(card, "Server-Timing", response.headers.get("Server-Timing"));
  if (!response.ok) {
    card.querySelector(".answer-text").textContent = await errorText(response);
    card.classList.add("failed");
    card.dataset.done = "error";
    return;
  }
  if (route === "classify" || route === "detect") {
    const body = await response.json();
    const result = body.results[0];
    if (!name) addMeta(card, "model", `${body.model.name} v${body.model.version}`);
    if (route === "classify") showBars(card, result.predictions);
    else drawBoxes(card, result);
    if (result.unfamiliar) addMeta(card, "unfamiliar", "yes: unlike the model's training images");
  } else {
    const blob = await response.blob();
    const score = (Number(response.headers.get("X-Score")) * 100).toFixed(1);
    const caption =
      route === "segment"
        ? "pet red, border yellow, background blue"
        : `${response.headers.get("X-Class")} (${score} %): yellow where the model saw it, violet where not`;
    showPicture(card, blob, caption);
    if (response.headers.get("X-Unfamiliar") === "true") addMeta(card, "unfamiliar", "yes");
  }
  card.dataset.done = "ok";
}

async function sendAll(files) {
  const images = [...files].filter((file) => file.type.startsWith("image/") || !file.type);
  if (!images.length) {
    say("Those are not images.", true);
    return;
  }
  say(`Sending ${images.length} image${images.length > 1 ? "s" : ""} to /${chosenTask()} ...`);
  for (const file of images) await send(file);
  say(`Answered ${images.length} image${images.length > 1 ? "s" : ""}.`);
}

function setUp() {
  const key = $("#api-key");
  key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  key.addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORAGE, key.value.trim());
    loadModels();
  });
  for (const radio of document.querySelectorAll("input[name=task]")) {
    radio.addEventListener("change", fillModelChoice);
  }
  $("#load-models").addEventListener("click", loadModels);
  $("#files").addEventListener("change", (event) => {
    sendAll(event.target.files);
    event.target.value = "";
  });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    sendAll(event.dataTransfer.files);
  });
  loadModels();
}

setUp();
