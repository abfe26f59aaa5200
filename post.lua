wrk.method = "POST"
wrk.body   = '{"task": "bench", "payload": {"n": 1}}'
wrk.headers["Content-Type"] = "application/json"
