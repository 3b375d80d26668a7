"""Sending mail: the SMTP client (mailer.py) and the mails the homeserver sends."""
