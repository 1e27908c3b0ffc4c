"""Prints a JSON summary of one received .eml, parsed with Python's `email` package, for
abreport's delivery tests to assert on: headers, the content-type tree, inline images with
their Content-IDs, attachments with their decoded sizes (CSV ones also read into rows), and
the text of the parts.

    python mime_summary.py MESSAGE.eml
"""

import csv
import email
import email.policy
import io
import json
import re
import sys


def tree(part):
    if part.is_multipart():
        return {"type": part.get_content_type(), "parts": [tree(p) for p in part.iter_parts()]}
    return {"type": part.get_content_type()}


def main():
    with open(sys.argv[1], "rb") as f:
        message = email.message_from_binary_file(f, policy=email.policy.default)
    inline, attachments, html, plain = [], [], [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        if ctype.startswith("image/"):
            payload = part.get_payload(decode=True) or b""
            inline.append({
                "content_id": (part.get("Content-ID") or "").strip("<>"),
                "type": ctype,
                "disposition": disposition,
                "bytes": len(payload),
                "png_signature": payload[:8] == b"\x89PNG\r\n\x1a\n",
            })
        elif disposition == "attachment":
            payload = part.get_payload(decode=True) or b""
            attachment = {"filename": part.get_filename(), "type": ctype, "bytes": len(payload)}
            if ctype == "text/csv":
                # Read as a spreadsheet would: the declared charset, RFC 4180 quoting.
                text = payload.decode(part.get_content_charset() or "ascii")
                attachment["charset"] = part.get_content_charset()
                attachment["csv_rows"] = list(csv.reader(io.StringIO(text, newline="")))
            attachments.append(attachment)
        elif ctype == "text/html":
            html.append(part.get_content())
        elif ctype == "text/plain":
            plain.append(part.get_content())
    html_text = "\n".join(html)
    summary = {
        "subject": str(message["Subject"] or ""),
        "from": str(message["From"] or ""),
        "to": str(message["To"] or ""),
        "tree": tree(message),
        "inline_images": inline,
        "attachments": attachments,
        "html": html_text,
        "plain": "\n".join(plain),
        "html_cids": sorted(set(re.findall(r'src="cid:([^"]+)"', html_text))),
    }
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
