// Copy buttons: <button data-copy-target="ID"> copies the value (or text) of the element #ID.
// Loaded with <script src>, never inline, so the pages can run under a strict CSP.
(function () {
  "use strict";

  function copied(button) {
    button.textContent = "Copied";
  }

  function notCopied(target, button) {
    // Neither way worked (a browser that refuses both): say so, with the text selected.
    if (typeof target.select === "function") {
      target.select();
    }
    button.textContent = "Select and copy by hand";
  }

  function fallbackCopy(target, button) {
    // Clipboard API needs a secure context; plain-HTTP installs fall back to a selection copy.
    if (typeof target.select === "function") {
      target.select();
    }
    var done = false;
    try {
      done = document.execCommand("copy");
    } catch (error) {
      done = false;
    }
    if (done) {
      copied(button);
    } else {
      notCopied(target, button);
    }
  }

  // A clipboard promise that never settles (a permission prompt nobody answers) must not leave
  // the button saying nothing: after this long the selection copy is tried instead.
  var CLIPBOARD_WAIT_MS = 1500;

  function clipboardCopy(text, target, button) {
    var settled = false;
    var timer = setTimeout(function () {
      if (!settled) {
        settled = true;
        fallbackCopy(target, button);
      }
    }, CLIPBOARD_WAIT_MS);
    navigator.clipboard.writeText(text).then(
      function () {
        clearTimeout(timer);
        settled = true;
        copied(button); // also when it lands after the wait: the text is on the clipboard
      },
      function () {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          fallbackCopy(target, button);
        }
      }
    );
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) {
      return;
    }
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) {
      return;
    }
    var text = "value" in target ? target.value : target.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      clipboardCopy(text, target, button);
    } else {
      fallbackCopy(target, button);
    }
  });
})();
