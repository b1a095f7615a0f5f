// Krait demo: the chat room of /chat. Plain JavaScript, no libraries.
//
// Every line comes from the server (our own messages too, as the room delivers them to everyone),
// newest first. Lines are inserted with textContent, never innerHTML, so nothing a peer sends can run
// here. The page's ?name= is passed on to the socket.
(function () {
    "use strict";
    var MAX_LINES = 50;
    var log = document.getElementById("log");
    var statusLine = document.getElementById("status");
    var say = document.getElementById("say");
    var input = document.getElementById("message");
    var announce = document.getElementById("announce");
    var announcement = document.getElementById("announcement");

    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    var name = new URLSearchParams(window.location.search).get("name") || "";
    var socket = new WebSocket(scheme + "//" + window.location.host + "/chat/socket?name=" +
                               encodeURIComponent(name));

    function show(text) {
        var line = document.createElement("p");
        line.className = "from-server";
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
        show(typeof event.data === "string" ? event.data : "(binary message)");
    };
    socket.onerror = function () {
        statusLine.textContent = "error";
    };
    socket.onclose = function (event) {
        statusLine.textContent = "closed (code " + event.code + (event.reason ? ", " + event.reason : "") + ")";
    };

    say.addEventListener("submit", function (event) {
        event.preventDefault();
        if (input.value && socket.readyState === WebSocket.OPEN) {
            socket.send(input.value);
            input.value = "";
        }
    });
    announce.addEventListener("submit", function (event) {
        event.preventDefault();
        if (announcement.value) {
            fetch("/chat/post", {method: "POST", body: new URLSearchParams({text: announcement.value})});
            announcement.value = "";
        }
    });
})();
