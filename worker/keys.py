"""Every Redis key retrainq uses, built in one place (arq's own keys live under the queue name)."""

from __future__ import annotations

from dataclasses import dataclass

# A tenant's runs key is its tenant key plus this (Lua scripts build it from a tenant id).
TENANT_RUNS_SUFFIX = ":runs"


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``retrainq`` by default)."""

    prefix: str = "retrainq"

    def tenant(self, tenant_id: str) -> str:
        """Hash: ``doc`` (Tenant JSON), ``version``, ``seq``, ``active_run``."""
        return f"{self.prefix}:tenant:{tenant_id}"

    @property
    def tenants(self) -> str:
        """Sorted set of tenant ids by creation time."""
        return f"{self.prefix}:tenants"

    def tenant_runs(self, tenant_id: str) -> str:
        """Sorted set of a tenant's run ids by creation time."""
        return f"{self.tenant(tenant_id)}{TENANT_RUNS_SUFFIX}"

    def tenant_models(self, tenant_id: str) -> str:
        """List of a tenant's deployed models (JSON), newest first."""
        return f"{self.prefix}:tenant:{tenant_id}:models"

    def run(self, run_id: str) -> str:
        """Hash: ``doc`` (Run JSON), ``state``, ``version``, flags ``cancel`` and ``rerun``."""
        return f"{self.prefix}:run:{run_id}"

    def tenant_prefix(self) -> str:
        """Prefix of tenant keys (for Lua scripts that look up a tenant by id)."""
        return f"{self.prefix}:tenant:"

    def run_prefix(self) -> str:
        """Prefix of run keys (for Lua scripts that look up a run by id)."""
        return f"{self.prefix}:run:"

    @property
    def due(self) -> str:
        """Sorted set of non-terminal runs with a pending step, scored by due time (ms)."""
        return f"{self.prefix}:due"

    @property
    def polls(self) -> str:
        """Sorted set of training runs parked with the poll sweeper, scored by next poll (ms)."""
        return f"{self.prefix}:polls"

    def durations(self, service: str) -> str:
        """List of recent BES job durations (s) of a training service, newest first."""
        return f"{self.prefix}:durations:{service}"

    def tenant_durations(self, service: str) -> str:
        """Hash of a training service: tenant id → its last few BES job durations (s),
        comma-separated, newest first (the bulk lane's order, ``worker/bulk_order.py``)."""
        return f"{self.prefix}:durations:{service}:tenants"

    def batch(self, batch_id: str) -> str:
        """Hash: ``doc`` (Batch JSON) and counters ``n:<state>``."""
        return f"{self.prefix}:batch:{batch_id}"

    def batch_runs(self, batch_id: str) -> str:
        """List of a batch's run ids."""
        return f"{self.prefix}:batch:{batch_id}:runs"

    @property
    def batches(self) -> str:
        """Sorted set of batch ids by creation time."""
        return f"{self.prefix}:batches"

    @property
    def no_batch(self) -> str:
        """Placeholder key passed to scripts for runs outside any batch (never written)."""
        return f"{self.prefix}:batch:-"

    def waiting(self, service: str, lane: str) -> str:
        """Sorted set of runs waiting for a BES slot of ``service`` in ``lane``, by age."""
        return f"{self.prefix}:waiting:{service}:{lane}"

    def slots(self, service: str) -> str:
        """Sorted set of runs holding a slot of ``service``, scored by lease expiry (ms)."""
        return f"{self.prefix}:slots:{service}"

    def endpoint_slots(self, service: str, endpoint: int) -> str:
        """Sorted set of runs holding a slot on one BES endpoint of ``service``."""
        return f"{self.prefix}:slots:{service}:ep:{endpoint}"

    def slot_endpoint(self, service: str) -> str:
        """Hash: run id -> index of the BES endpoint its slot is on."""
        return f"{self.prefix}:slots:{service}:owner"

    def dispatch_counter(self, service: str) -> str:
        """Counter of grants, used to serve bulk every Nth grant."""
        return f"{self.prefix}:slots:{service}:grants"

    def throttle(self, service: str) -> str:
        """Set (with a TTL) while ``service`` answered 429/503: dispatch pauses."""
        return f"{self.prefix}:throttle:{service}"

    def scoring_slots(self, web_service_id: str) -> str:
        """Sorted set of runs holding a scoring slot of a predictive web service, by lease
        expiry (ms)."""
        return f"{self.prefix}:scoring:{web_service_id}"

    def scoring_owner(self, web_service_id: str) -> str:
        """Hash: run id -> 0 for the runs holding a scoring slot of the web service."""
        return f"{self.prefix}:scoring:{web_service_id}:owner"

    def deploy_lock(self, tenant_id: str) -> str:
        """Lock held by the run deploying to a tenant (value: run id)."""
        return f"{self.prefix}:deploylock:{tenant_id}"

    def api_key(self, key_hash: str) -> str:
        """String: the tenant id a hashed tenant API key belongs to."""
        return f"{self.prefix}:apikey:{key_hash}"

    def idempotency(self, scope: str, key: str) -> str:
        """String: the run id an ``Idempotency-Key`` produced (with a TTL)."""
        return f"{self.prefix}:idem:{scope}:{key}"

    @property
    def schedules(self) -> str:
        """Sorted set of schedule names by their next fire time (ms)."""
        return f"{self.prefix}:schedules"

    def schedule(self, name: str) -> str:
        """String: a schedule's definition (JSON)."""
        return f"{self.prefix}:schedule:{name}"

    @property
    def schedules_pending(self) -> str:
        """Hash: schedule name -> slot (ms) claimed but not yet fired (crash recovery)."""
        return f"{self.prefix}:schedules:pending"

    def rate_limit(self, key_id: str, window: int) -> str:
        """Counter of one API key's requests in one fixed window (with a TTL)."""
        return f"{self.prefix}:ratelimit:{key_id}:{window}"

    def idempotent_request(self, caller: str, key: str) -> str:
        """String: JSON ``{fingerprint, run_id}`` of one caller's ``Idempotency-Key`` (TTL)."""
        return f"{self.prefix}:idemreq:{caller}:{key}"

    def auth_failures(self, kind: str, ident: str, window: int) -> str:
        """Counter of failed authentications by one client address or key prefix in a window."""
        return f"{self.prefix}:authfail:{kind}:{ident}:{window}"

    @property
    def workers(self) -> str:
        """Sorted set of live worker ids, by the time each registered (ms)."""
        return f"{self.prefix}:workers"

    def worker_heartbeat(self, worker_id: str) -> str:
        """String with a short TTL, renewed while the worker lives."""
        return f"{self.prefix}:worker:{worker_id}:alive"

    def worker_steps(self, worker_id: str) -> str:
        """Set of the arq job ids a worker is running."""
        return f"{self.prefix}:worker:{worker_id}:steps"

    def worker_claims(self, worker_id: str) -> str:
        """Set of the parked runs a worker's sweeper has claimed."""
        return f"{self.prefix}:worker:{worker_id}:claims"

    def tenant_verification(self, tenant_id: str) -> str:
        """String: JSON of the onboarding preflight's outcome for a tenant's current target."""
        return f"{self.prefix}:tenant:{tenant_id}:verified"

    def failpoint(self, name: str, run_id: str) -> str:
        """String: set once a chaos-test failpoint crashed the worker for this run."""
        return f"{self.prefix}:failpoint:{name}:{run_id}"

    @property
    def archive_lease(self) -> str:
        """String (TTL): the worker running the archiver's pass (one at a time, fleet-wide)."""
        return f"{self.prefix}:archive:lease"

    @property
    def archive_intents(self) -> str:
        """Hash: archive part path -> JSON ``{tenant, ids}`` of a part being written."""
        return f"{self.prefix}:archive:intents"

    @property
    def archived(self) -> str:
        """Hash: archived run id -> ``{tenant}/{yyyy-mm}/{pass}``, naming its archive part."""
        return f"{self.prefix}:archived"

    @property
    def archived_batches(self) -> str:
        """Hash: archived batch id -> ``{yyyy-mm}/{pass}``, naming its summary's part."""
        return f"{self.prefix}:archived:batches"

    @property
    def offboarded(self) -> str:
        """Sorted set of offboarded tenant ids by offboarding time (s): the archiver moves
        their records after a grace period."""
        return f"{self.prefix}:offboarded"

    def archive_index_prefix(self) -> str:
        """Prefix of the archived runs' index buckets: ``archived:{first 4 hex of the id}``, a
        hash of the id's next 10 hex -> part number(s) (Lua scripts build the bucket key)."""
        return f"{self.prefix}:archived:"

    def archive_index(self, run_id: str) -> tuple[str, str]:
        """The bucket key and field of an archived run in the index."""
        return f"{self.archive_index_prefix()}{run_id[:4]}", run_id[4:14]

    @property
    def archive_parts(self) -> str:
        """Hash: part number -> ``{tenant}/{yyyy-mm}/{pass}`` of every archive part of runs."""
        return f"{self.prefix}:archive:parts"

    @property
    def archive_part_seq(self) -> str:
        """Counter of the part numbers handed out."""
        return f"{self.prefix}:archive:partseq"

    @property
    def v2_pool_tenants(self) -> str:
        """Hash: v2 serving pool name -> its onboarded tenants (written with the tenant records
        that join or leave the pool, in one script each)."""
        return f"{self.prefix}:v2pools:tenants"
