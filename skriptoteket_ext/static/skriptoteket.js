// Skriptoteket pages: every change is a call to the JSON API (one place for every permission rule).
//
//   <button data-api-method="PUT" data-api-path="favorites/7">          a plain call
//   <form data-api-method="POST" data-api-path="tools" data-redirect="tools/{id}">   the form's fields as JSON
//
// Form fields: name="x" → "x": value; name="x[]" → a list of the checked/filled values; data-type="json" on a
// field → its value parsed as JSON; data-type="int" → a number; empty optional fields are left out.
// On success the page reloads (or follows data-redirect, with {key} taken from the answer); on failure the
// error envelope's message is shown, with any issues listed.
(function () {
  "use strict";
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const api = meta("skr-api");

  function flash(message, issues) {
    const box = document.querySelector(".skr-flash");
    if (!box) { window.alert(message); return; }
    box.hidden = false;
    box.className = "skr-flash alert alert-danger";
    box.textContent = message;
    if (issues && issues.length) {
      const list = document.createElement("ul");
      for (const issue of issues) {
        const item = document.createElement("li");
        item.textContent = (issue.path ? issue.path + ": " : "") + issue.message;
        list.appendChild(item);
      }
      box.appendChild(list);
    }
    box.scrollIntoView({ block: "nearest" });
  }

  function formBody(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) {
        if (!el.name.endsWith("[]") && el.type === "checkbox") body[el.name] = false;
        continue;
      }
      let value = el.type === "checkbox" && !el.name.endsWith("[]") ? true : el.value;
      if (el.dataset.type === "json") {
        try { value = JSON.parse(value || "null"); } catch (err) { throw new Error(`${el.name}: ${err.message}`); }
      } else if (el.dataset.type === "int") {
        value = value === "" ? null : Number(value);
      } else if (value === "" && el.dataset.optional !== undefined) {
        continue;
      }
      if (el.name.endsWith("[]")) {
        const key = el.name.slice(0, -2);
        (body[key] = body[key] || []).push(value);
      } else {
        body[el.name] = value;
      }
    }
    for (const key of (form.dataset.lists || "").split(",").filter(Boolean)) body[key] = body[key] || [];
    return body;
  }

  async function call(el, body) {
    const method = el.dataset.apiMethod;
    const headers = { "X-XSRFToken": meta("skr-xsrf"), Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined && method !== "GET") {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(api + el.dataset.apiPath, init);
    const text = await response.text();
    const data = text ? JSON.parse(text) : {};
    if (!response.ok) {
      const error = data.error || {};
      flash(error.message || response.statusText, (error.details || {}).issues);
      return;
    }
    const target = el.dataset.redirect;
    if (target) {
      window.location.href = target.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(data[key]));
    } else {
      window.location.reload();
    }
  }

  document.addEventListener("click", (event) => {
    const el = event.target.closest("button[data-api-method]");
    if (!el || el.form) return;
    event.preventDefault();
    if (el.dataset.confirm && !window.confirm(el.dataset.confirm)) return;
    el.disabled = true;
    call(el, el.dataset.apiBody ? JSON.parse(el.dataset.apiBody) : undefined).finally(() => { el.disabled = false; });
  });

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-api-method]");
    if (!form) return;
    event.preventDefault();
    let body;
    try { body = formBody(form); } catch (err) { flash(err.message); return; }
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    call(form, body).finally(() => buttons.forEach((b) => { b.disabled = false; }));
  });
})();
