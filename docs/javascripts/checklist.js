/*
 * Interview checklist: makes the task-list checkboxes inside #interview-checklist clickable
 * and remembers them in this browser (localStorage). No library, no network.
 *
 * Material renders Markdown task lists (pymdownx.tasklist, custom_checkbox) as disabled
 * <input type="checkbox"> elements inside <label class="task-list-control">. We enable them,
 * restore their saved state, save every change, and add a "Reset" button.
 *
 * Material's instant navigation swaps pages without a full reload, so the setup runs from
 * document$.subscribe(...), which Material calls after every page load.
 */
(function () {
  "use strict";

  // Bump the version when the list changes so that old ticks do not land on new items.
  var STORAGE_KEY = "llm-post-training:interview-checklist:v1";
  var ROOT_ID = "interview-checklist";
  var RESET_ID = "interview-checklist-reset";
  var STATUS_ID = "interview-checklist-status";

  function load() {
    try {
      var raw = window.localStorage.getItem(STORAGE_KEY);
      var parsed = raw ? JSON.parse(raw) : {};
      return parsed && typeof parsed === "object" ? parsed : {};
    } catch (err) {
      return {}; // storage disabled or corrupt: start empty
    }
  }

  function save(state) {
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(state));
    } catch (err) {
      /* storage disabled or full: ticks last until the page is left */
    }
  }

  function clear() {
    try {
      window.localStorage.removeItem(STORAGE_KEY);
    } catch (err) {
      /* nothing saved */
    }
  }

  // A stable key per item: the text of its bold title (else its whole text), so that
  // reordering items or rewording their explanation keeps their ticks.
  function itemKey(box) {
    var item = box.closest("li");
    if (!item) return "";
    var title = item.querySelector("strong");
    var text = (title || item).textContent || "";
    return text.replace(/\s+/g, " ").trim().slice(0, 200);
  }

  function updateStatus(boxes) {
    var status = document.getElementById(STATUS_ID);
    if (!status) return;
    var done = 0;
    boxes.forEach(function (box) {
      if (box.checked) done += 1;
    });
    status.textContent = done + " of " + boxes.length + " ticked";
  }

  function setup() {
    var root = document.getElementById(ROOT_ID);
    if (!root) return;
    var boxes = Array.prototype.slice.call(
      root.querySelectorAll('li.task-list-item input[type="checkbox"]')
    );
    if (boxes.length === 0) return;

    var state = load();
    boxes.forEach(function (box) {
      var key = itemKey(box);
      box.disabled = false;
      box.removeAttribute("disabled");
      box.checked = state[key] === true;
      box.setAttribute("data-checklist-key", key);
      box.addEventListener("change", function () {
        var current = load();
        if (box.checked) {
          current[key] = true;
        } else {
          delete current[key];
        }
        save(current);
        updateStatus(boxes);
      });
    });

    // One Reset button and status line per page view (instant navigation rebuilds the page).
    if (!document.getElementById(RESET_ID)) {
      var bar = document.createElement("p");
      var button = document.createElement("button");
      button.id = RESET_ID;
      button.type = "button";
      button.className = "md-button";
      button.textContent = "Reset";
      button.title = "Untick every item and forget the saved ticks";
      var status = document.createElement("span");
      status.id = STATUS_ID;
      status.style.marginLeft = "1em";
      status.setAttribute("aria-live", "polite");
      button.addEventListener("click", function () {
        clear();
        boxes.forEach(function (box) {
          box.checked = false;
        });
        updateStatus(boxes);
      });
      bar.appendChild(button);
      bar.appendChild(status);
      root.appendChild(bar);
    }
    updateStatus(boxes);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(setup);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
