(function () {
  "use strict";
  var form = document.getElementById("request-form");
  if (!form || !window.fetch) return;
  var status = document.getElementById("status");
  var button = document.getElementById("submit");
  var label = button.textContent;
  function clear() {
    var errors = form.querySelectorAll(".error");
    for (var i = 0; i < errors.length; i++) errors[i].textContent = "";
    var fields = form.querySelectorAll("[aria-invalid]");
    for (var j = 0; j < fields.length; j++) fields[j].removeAttribute("aria-invalid");
    status.textContent = "";
    status.className = "";
  }
  function say(text, kind) {
    status.textContent = text;
    status.className = kind;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clear();
    button.disabled = true;
    button.textContent = form.getAttribute("data-sending");
    fetch(form.action, {
      method: "POST",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)).toString(),
      credentials: "omit"
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.ok) {
          say(body.message, "ok");
          form.querySelector("#email").value = "";
          return;
        }
        var first = null;
        var rest = [];
        var errors = body.errors || {};
        Object.keys(errors).forEach(function (field) {
          var slot = document.getElementById(field + "-error");
          var input = document.getElementById(field);
          if (slot && input) {
            slot.textContent = errors[field].join(" ");
            input.setAttribute("aria-invalid", "true");
            if (!first) first = input;
          } else {
            rest.push(errors[field].join(" "));
          }
        });
        say(rest.length || !first ? (rest.join(" ") || body.message) : "", rest.length || !first ? "bad" : "");
        if (first) first.focus();
      });
    }).catch(function () {
      say(form.getAttribute("data-network-error"), "bad");
    }).then(function () {
      button.disabled = false;
      button.textContent = label;
    });
  });
})();
