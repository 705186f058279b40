# The prod environment. Hosts may share roles: a small install can put every
# group on two hosts, a large one spreads them over twenty.
from roles.preflight import check_inventory

monitoring = [
    ("mon1.prod.sentinel.internal", {"address": "mon1.prod.sentinel.internal"}),
]
telemetry = [
    ("tel1.prod.sentinel.internal", {"address": "tel1.prod.sentinel.internal"}),
]
app = [
    ("app1.prod.sentinel.internal", {"address": "app1.prod.sentinel.internal"}),
]

check_inventory(globals())
