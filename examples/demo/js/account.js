// Krait demo: the "Ask /api/me" button of the sign-in page fetches the JSON endpoint and shows its answer.
(function () {
    "use strict";
    var button = document.getElementById("ask");
    var answer = document.getElementById("answer");
    if (!button || !answer) {
        return;
    }
    button.addEventListener("click", function () {
        fetch("/api/me", {headers: {"Accept": "application/json"}})
            .then(function (response) { return response.json(); })
            .then(function (data) { answer.textContent = JSON.stringify(data, null, 2); })
            .catch(function (error) { answer.textContent = "failed: " + error; });
    });
})();
