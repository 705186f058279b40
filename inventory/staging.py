# The staging environment. Hosts may share roles: a small install can put every
# group on two hosts, a large one spreads them over twenty.
from roles.preflight import check_inventory

monitoring = [
    ("mon1.staging.sentinel.internal", {"address": "mon1.staging.sentinel.internal"}),
]
telemetry = [
    ("tel1.staging.sentinel.internal", {"address": "tel1.staging.sentinel.internal"}),
]
app = [
    ("app1.staging.sentinel.internal", {"address": "app1.staging.sentinel.internal"}),
]

check_inventory(globals())
