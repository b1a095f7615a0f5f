// Krait demo: show the browser's local time on the home page, once a second.
(function () {
    "use strict";
    var clock = document.getElementById("clock");
    if (!clock) {
        return;
    }
    function update() {
        clock.textContent = new Date().toLocaleTimeString();
    }
    update();
    setInterval(update, 1000);
})();
