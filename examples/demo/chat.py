# GET /chat: the page with the chat room's WebSocket client (js/chat.js). A SimpleCtrl is enough here.
from krait import mvc

mvc.set_init_ctrl(mvc.SimpleCtrl(".view/chat.html", {"page_url": "/chat", "title": "Chat room"}))
