/*
 * Self-test drill: a "Random question" button on pages that contain #random-question.
 * Each click closes every question block of the page, scrolls to one chosen at random (never
 * the same one twice in a row), marks it with data-random-pick and leaves its answer closed.
 * No library, no network.
 *
 * Question blocks are Material's collapsible admonitions: <details class="question">.
 * Material's instant navigation swaps pages without a reload, so the setup runs from
 * document$.subscribe(...), which Material calls after every page load.
 */
(function () {
  "use strict";

  var ROOT_ID = "random-question";
  var BUTTON_ID = "random-question-button";
  var HIGHLIGHT_MS = 1500;
  var last = -1;

  function questions() {
    var article = document.querySelector("article") || document.body;
    return Array.prototype.slice.call(article.querySelectorAll("details.question"));
  }

  function pick(count) {
    if (count <= 1) return 0;
    var index = Math.floor(Math.random() * (count - 1));
    // Skip the previous pick so that two clicks never show the same question.
    if (last >= 0 && index >= last) index += 1;
    return index;
  }

  function showRandom() {
    var all = questions();
    if (all.length === 0) return;
    all.forEach(function (block) {
      block.open = false;
      block.removeAttribute("data-random-pick");
    });
    last = pick(all.length);
    var chosen = all[last];
    chosen.setAttribute("data-random-pick", "true");
    chosen.scrollIntoView({ behavior: "smooth", block: "center" });
    var summary = chosen.querySelector("summary");
    if (summary) summary.focus({ preventScroll: true });
    chosen.style.outline = "0.15rem solid var(--md-accent-fg-color)";
    window.setTimeout(function () {
      chosen.style.outline = "";
    }, HIGHLIGHT_MS);
  }

  function setup() {
    var root = document.getElementById(ROOT_ID);
    if (!root || document.getElementById(BUTTON_ID)) return;
    last = -1;
    var bar = document.createElement("p");
    var button = document.createElement("button");
    button.id = BUTTON_ID;
    button.type = "button";
    button.className = "md-button md-button--primary";
    button.textContent = "Random question";
    button.title = "Jump to a question at random, with its answer closed";
    button.addEventListener("click", showRandom);
    bar.appendChild(button);
    root.appendChild(bar);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(setup);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
