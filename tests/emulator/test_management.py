"""Classic endpoint management (PROTOCOL.md §5) and RRS (§4) over raw HTTP."""

from __future__ import annotations

import pytest

from emulator.datagen import bike_rental_rows

from .conftest import SCORING, TRAINING, Emu, bearer

V = "?api-version=2.0"
RESOURCE = "Bike Rental [trained model]"


async def test_list_and_get_services(emu: Emu) -> None:
    """GET webservices lists both pairs; GET one answers the service by id."""
    url = f"{emu.url}/workspaces/{emu.ws_id}/webservices"
    status, services = await emu.json("GET", url, headers=emu.ws_token)
    assert status == 200
    names = {s["Name"] for s in services}
    assert {TRAINING, SCORING, "Churn Training", "Churn Scoring"} <= names
    status, one = await emu.json("GET", emu.management(SCORING), headers=emu.ws_token)
    assert (status, one["Name"], one["Id"]) == (200, SCORING, emu.service(SCORING).id)


async def test_default_endpoint_object(emu: Emu) -> None:
    """The default endpoint shows keys, ApiLocation and the trained-model resource."""
    status, endpoints = await emu.json("GET", f"{emu.management()}/endpoints", headers=emu.ws_token)
    assert status == 200
    assert [e["Name"] for e in endpoints] == ["default"]
    default = endpoints[0]
    configured = emu.service(SCORING).endpoints[0]
    assert default["PrimaryKey"] == configured.primary_key
    assert default["ApiLocation"] == (f"{emu.url}/workspaces/{emu.ws_id}/services/{configured.id}")
    assert default["Resources"][0]["Name"] == RESOURCE
    for field in (
        "CreationTime",
        "WebServiceId",
        "WorkspaceId",
        "HelpLocation",
        "SecondaryKey",
        "Version",
        "MaxConcurrentCalls",
        "ThrottleLevel",
        "DiagnosticsTraceLevel",
    ):
        assert field in default


async def test_put_adds_endpoint_with_own_id_keys_and_default_model(emu: Emu) -> None:
    """PUT creates an endpoint with its own id and keys that scores like the default."""
    url = f"{emu.management()}/endpoints/rentalloc001"
    body = {"Description": "loc 1", "ThrottleLevel": "High", "MaxConcurrentCalls": 10}
    status, created = await emu.json("PUT", url, json=body, headers=emu.ws_token)
    assert status == 200
    assert created["Name"] == "rentalloc001"
    assert created["MaxConcurrentCalls"] == 10
    default = emu.service(SCORING).endpoints[0]
    assert created["Id"] != default.id
    assert created["PrimaryKey"] != default.primary_key

    rows = bike_rental_rows("x", 5, seed=2)
    request = _table(rows)
    scored = []
    for api, key in (
        (created["ApiLocation"], created["PrimaryKey"]),
        (emu.runtime(SCORING)[0], default.primary_key),
    ):
        status, answer = await emu.json(
            "POST", f"{api}/execute{V}&details=true", json=request, headers=bearer(key)
        )
        assert status == 200, answer
        scored.append([r[-1] for r in answer["Results"]["output1"]["value"]["Values"]])
    assert scored[0] == scored[1]

    # The endpoint key works for its own management calls, not for others'.
    status, _ = await emu.json("GET", url, headers=bearer(created["PrimaryKey"]))
    assert status == 200
    status, _ = await emu.json(
        "GET", f"{emu.management()}/endpoints/default", headers=bearer(created["PrimaryKey"])
    )
    assert status == 401


async def test_re_put_is_idempotent(emu: Emu) -> None:
    """Re-PUT with the same settings answers 200 and changes nothing (same id and keys)."""
    url = f"{emu.management()}/endpoints/tenant7"
    body = {"Description": "t", "ThrottleLevel": "High", "MaxConcurrentCalls": 20}
    _, first = await emu.json("PUT", url, json=body, headers=emu.ws_token)
    status, second = await emu.json("PUT", url, json=body, headers=emu.ws_token)
    assert status == 200
    assert first == second
    _, endpoints = await emu.json("GET", f"{emu.management()}/endpoints", headers=emu.ws_token)
    assert len(endpoints) == 2


async def test_throttle_low_fixes_concurrency_at_4(emu: Emu) -> None:
    """ThrottleLevel Low ignores MaxConcurrentCalls (fixed at 4)."""
    body = {"ThrottleLevel": "Low", "MaxConcurrentCalls": 50}
    _, created = await emu.json(
        "PUT", f"{emu.management()}/endpoints/low", json=body, headers=emu.ws_token
    )
    assert created["MaxConcurrentCalls"] == 4


@pytest.mark.parametrize("name", ["a" * 25, "RentalLoc", "rental-loc", "rental_1"])
async def test_invalid_endpoint_names_are_400(emu: Emu, name: str) -> None:
    """Names must be 1-24 lowercase letters or digits."""
    status, body = await emu.json(
        "PUT", f"{emu.management()}/endpoints/{name}", json={}, headers=emu.ws_token
    )
    assert status == 400
    assert body["error"]["code"] == "BadArgument"


async def test_24_character_name_is_fine(emu: Emu) -> None:
    """The longest valid name is accepted."""
    status, _ = await emu.json(
        "PUT", f"{emu.management()}/endpoints/{'a' * 24}", json={}, headers=emu.ws_token
    )
    assert status == 200


async def test_put_settings_are_validated(emu: Emu) -> None:
    """MaxConcurrentCalls outside 1..200 or an unknown ThrottleLevel answer 400."""
    for body in ({"MaxConcurrentCalls": 0}, {"MaxConcurrentCalls": 201}, {"ThrottleLevel": "Max"}):
        status, _ = await emu.json(
            "PUT", f"{emu.management()}/endpoints/x1", json=body, headers=emu.ws_token
        )
        assert status == 400


async def test_endpoint_limit(emu: Emu) -> None:
    """PUT beyond max_endpoints answers 400 and adds nothing."""
    config = emu.config.model_copy(deep=True)
    config.workspaces[0].web_services[1].max_endpoints = 2
    from .conftest import start_emulator

    server, url = await start_emulator(config)
    try:
        base = url + emu.management().removeprefix(emu.url)
        assert (await emu.json("PUT", f"{base}/endpoints/one", json={}, headers=emu.ws_token))[
            0
        ] == 200
        status, body = await emu.json("PUT", f"{base}/endpoints/two", json={}, headers=emu.ws_token)
        assert status == 400
        assert body["error"]["details"][0]["code"] == "EndpointLimitReached"
    finally:
        await server.close()


async def test_patch_rules(emu: Emu) -> None:
    """PATCH of default, of the training service, a wrong Name, or a bad location → 400."""
    _, added = await emu.json(
        "PUT", f"{emu.management()}/endpoints/tenant1", json={}, headers=emu.ws_token
    )
    good_location = added["Resources"][0]["Location"]
    before = await _score(emu, added)

    def patch_body(name: str, location: dict[str, str]) -> dict[str, object]:
        return {"Resources": [{"Name": name, "Location": location}]}

    status, body = await emu.json(
        "PATCH",
        f"{emu.management()}/endpoints/default",
        json=patch_body(RESOURCE, good_location),
        headers=emu.ws_token,
    )
    assert status == 400
    assert body["error"]["details"][0]["code"] == "CannotUpdateDefaultEndpoint"

    status, body = await emu.json(
        "PATCH",
        f"{emu.management(TRAINING)}/endpoints/default",
        json=patch_body(RESOURCE, good_location),
        headers=emu.ws_token,
    )
    assert status == 400

    status, body = await emu.json(
        "PATCH",
        f"{emu.management()}/endpoints/tenant1",
        json=patch_body("Other [trained model]", good_location),
        headers=emu.ws_token,
    )
    assert (status, body["error"]["details"][0]["code"]) == (400, "ResourceNotFound")

    bad = {
        "BaseLocation": emu.url + "/",
        "RelativeLocation": "nowhere/x.ilearner",
        "SasBlobToken": "?sv=1",
    }
    status, body = await emu.json(
        "PATCH",
        f"{emu.management()}/endpoints/tenant1",
        json=patch_body(RESOURCE, bad),
        headers=emu.ws_token,
    )
    assert (status, body["error"]["code"]) == (400, "BadArgument")
    assert await _score(emu, added) == before
    stats = await emu.stats()
    assert stats["web_services"][SCORING]["endpoints"]["tenant1"]["patches"] == 0

    status, body = await emu.json(
        "PATCH",
        f"{emu.management()}/endpoints/nosuch",
        json=patch_body(RESOURCE, good_location),
        headers=emu.ws_token,
    )
    assert status == 404

    async with emu.http.patch(
        f"{emu.management()}/endpoints/tenant1",
        json=patch_body(RESOURCE, good_location),
        headers=emu.ws_token,
    ) as response:
        assert response.status == 200
        assert await response.read() == b""


async def test_refresh_and_delete(emu: Emu) -> None:
    """Refresh of default → 400; refresh of an added one → 200; DELETE removes it; 404 after."""
    url = f"{emu.management()}/endpoints/gone"
    await emu.json("PUT", url, json={}, headers=emu.ws_token)
    status, _ = await emu.json(
        "POST",
        f"{emu.management()}/endpoints/default/refresh",
        json={"OverwriteResources": "True"},
        headers=emu.ws_token,
    )
    assert status == 400
    status, _ = await emu.json(
        "POST", f"{url}/refresh", json={"OverwriteResources": "True"}, headers=emu.ws_token
    )
    assert status == 200
    assert (
        await emu.json("DELETE", f"{emu.management()}/endpoints/default", headers=emu.ws_token)
    )[0] == 400
    assert (await emu.json("DELETE", url, headers=emu.ws_token))[0] == 200
    status, body = await emu.json("GET", url, headers=emu.ws_token)
    assert (status, body["error"]["code"]) == (404, "NotFound")


async def test_management_auth(emu: Emu) -> None:
    """A wrong token answers 401; an unknown service 404."""
    status, body = await emu.json("GET", f"{emu.management()}/endpoints", headers=bearer("x"))
    assert (status, body["error"]["code"]) == (401, "Unauthorized")
    unknown = f"{emu.url}/workspaces/{emu.ws_id}/webservices/{'e' * 32}/endpoints"
    assert (await emu.json("GET", unknown, headers=emu.ws_token))[0] == 404


async def test_rrs_formats(emu: Emu) -> None:
    """execute in table format (with and without ColumnTypes) and in swagger format agree."""
    base, auth = emu.runtime(SCORING)
    rows = bike_rental_rows("y", 3, seed=4)
    status, table = await emu.json(
        "POST", f"{base}/execute{V}&details=true", json=_table(rows), headers=auth
    )
    assert status == 200
    value = table["Results"]["output1"]["value"]
    assert table["Results"]["output1"]["type"] == "table"
    assert value["ColumnNames"][-1] == "Scored Labels"
    assert value["ColumnTypes"][-1] == "Double"
    assert all(isinstance(c, str) for row in value["Values"] for c in row)
    _, plain = await emu.json("POST", f"{base}/execute{V}", json=_table(rows), headers=auth)
    assert "ColumnTypes" not in plain["Results"]["output1"]["value"]
    status, swagger = await emu.json(
        "POST",
        f"{base}/execute{V}&format=swagger",
        json={"Inputs": {"input1": rows}},
        headers=auth,
    )
    assert status == 200
    assert [r["Scored Labels"] for r in swagger["Results"]["output1"]] == [
        r[-1] for r in value["Values"]
    ]


async def test_rrs_classification_and_errors(emu: Emu) -> None:
    """Churn scoring adds labels and probabilities; missing columns → 400; wrong key → 401."""
    base, auth = emu.runtime("Churn Scoring")
    request = {
        "Inputs": {
            "input1": {
                "ColumnNames": [
                    "tenure",
                    "monthly_charges",
                    "support_calls",
                    "paperless",
                    "contract",
                ],
                "Values": [["2", "99.5", "6", "1", "month"], ["70", "20", "0", "0", "two_year"]],
            }
        },
        "GlobalParameters": {},
    }
    status, answer = await emu.json("POST", f"{base}/execute{V}", json=request, headers=auth)
    assert status == 200
    value = answer["Results"]["output1"]["value"]
    assert value["ColumnNames"][-2:] == ["Scored Labels", "Scored Probabilities"]
    assert [row[-2] for row in value["Values"]] == ["1", "0"]
    request["Inputs"]["input1"]["ColumnNames"][0] = "age"  # type: ignore[index]
    status, answer = await emu.json("POST", f"{base}/execute{V}", json=request, headers=auth)
    assert status == 400
    assert "tenure" in answer["error"]["message"]
    status, _ = await emu.json("POST", f"{base}/execute{V}", json=request, headers=bearer("no"))
    assert status == 401


def _table(rows: list[dict[str, str]]) -> dict[str, object]:
    columns = list(rows[0])
    return {
        "Inputs": {
            "input1": {"ColumnNames": columns, "Values": [[r[c] for c in columns] for r in rows]}
        },
        "GlobalParameters": {},
    }


async def _score(emu: Emu, endpoint: dict[str, str]) -> list[str]:
    rows = bike_rental_rows("probe", 4, seed=5)
    status, answer = await emu.json(
        "POST",
        f"{endpoint['ApiLocation']}/execute{V}",
        json=_table(rows),
        headers=bearer(endpoint["PrimaryKey"]),
    )
    assert status == 200
    return [r[-1] for r in answer["Results"]["output1"]["value"]["Values"]]
