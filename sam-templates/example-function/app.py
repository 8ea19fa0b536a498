"""An example function: it calls one allowed API through the Palisade egress proxy, which the
runtime reaches through the HTTPS_PROXY variable that palisade-wrap sets."""

import urllib.request


def handler(event, context):
    with urllib.request.urlopen("https://checkip.amazonaws.com/", timeout=5) as response:
        return {"status": response.status, "address": response.read().decode().strip()}
