// Krait demo: the WebSocket client of /chat. Plain JavaScript, no libraries.
//
// Server messages are shown as <p class="from-server">, ours as <p class="from-you">, newest first.
// Messages are inserted with textContent, never innerHTML, so nothing a peer sends can run here.
(function () {
    "use strict";
    var MAX_LINES = 50;
    var log = document.getElementById("log");
    var statusLine = document.getElementById("status");
    var form = document.getElementById("say");
    var input = document.getElementById("message");

    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(scheme + "//" + window.location.host + "/chat/socket");

    function show(text, cssClass) {
        var line = document.createElement("p");
        line.className = cssClass;
        line.textContent = text;
        log.insertBefore(line, log.firstChild);
        while (log.childNodes.length > MAX_LINES) {
            log.removeChild(log.lastChild);
        }
    }

    socket.onopen = function () {
        statusLine.textContent = "connected";
    };
    socket.onmessage = function (event) {
        if (typeof event.data === "string") {
            show(event.data, "from-server");
        } else {
            show("(binary message)", "from-server");
        }
    };
    socket.onerror = function () {
        statusLine.textContent = "error";
    };
    socket.onclose = function (event) {
        statusLine.textContent = "closed (code " + event.code + (event.reason ? ", " + event.reason : "") + ")";
    };

    form.addEventListener("submit", function (event) {
        event.preventDefault();
        var text = input.value;
        if (text && socket.readyState === WebSocket.OPEN) {
            socket.send(text);
            show(text, "from-you");
            input.value = "";
        }
    });
})();
