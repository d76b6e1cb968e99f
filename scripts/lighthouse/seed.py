"""Seeds conduit for make lighthouse: prints the token of jake, who wrote an
article with markdown and follows nobody; anna commented on it."""
import json
import sys
import urllib.request

base = sys.argv[1]


def call(method, path, body, token=""):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Token " + token)
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def user(name):
    return call("POST", "/api/users", {"user": {"username": name, "email": name + "@example.com",
                                                "password": name + "-password-1"}})["user"]["token"]


jake, anna = user("jake"), user("anna")
body = open(__file__.replace("seed.py", "article.md")).read()
call("POST", "/api/articles", {"article": {"title": "How to train your dragon", "description": "Ever wonder how?",
                                           "body": body, "tagList": ["dragons", "training"]}}, jake)
for i in range(12):
    call("POST", "/api/articles", {"article": {"title": f"Notes {i}", "description": f"Short notes, part {i}",
                                               "body": "Some *text*.", "tagList": ["notes"]}}, anna)
call("POST", "/api/articles/how-to-train-your-dragon/comments", {"comment": {"body": "Great read!"}}, anna)
print(jake)
