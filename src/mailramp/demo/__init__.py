"""`mailramp demo`: the whole product on one machine in about a minute, with local servers
playing the recipients (demo/servers.py) and simulated people (demo/people.py)."""
