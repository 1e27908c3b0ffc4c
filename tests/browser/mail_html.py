"""Writes the HTML part of a received .eml as a mail client shows it: every `cid:` image
reference replaced by a data: URI of that inline image, so that a browser can render the mail
from one file without any request.

    python mail_html.py MESSAGE.eml OUT.html
"""

import base64
import email
import email.policy
import sys


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source, "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    html, images = None, {}
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/html" and html is None:
            html = part.get_content()
        elif ctype.startswith("image/") and part.get("Content-ID"):
            payload = base64.b64encode(part.get_payload(decode=True) or b"").decode("ascii")
            images[part["Content-ID"].strip().strip("<>")] = f"data:{ctype};base64,{payload}"
    if html is None:
        sys.exit(f"{source}: no text/html part")
    for cid, uri in images.items():
        html = html.replace(f'"cid:{cid}"', f'"{uri}"')
    with open(target, "w", encoding="utf-8") as f:
        f.write(html)


if __name__ == "__main__":
    sys.exit(main())
