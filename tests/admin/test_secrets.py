"""After creation, no response ever carries a client secret, a token or an admin key."""

from __future__ import annotations

import httpx

from tests.admin.conftest import API, credential, put_client, tenant_url


async def test_no_secret_in_any_later_response(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    secrets = ["app-secret", "given-client-secret", "token-value-1", "token-value-2"]
    await put_client(http, operator, acme, "given", {"client_secret": "given-client-secret"})
    generated = (await put_client(http, operator, acme, "generated", {})).json()["client_secret"]
    jwt = {"token_endpoint_auth_method": "client_secret_jwt", "client_secret": "j" * 40}
    await put_client(http, operator, acme, "jwt", jwt)
    key = (await http.post(tenant_url(acme, "/admin-keys"), headers=operator)).json()["key"]
    secrets += [generated, "j" * 40, key]
    batch = [credential("token-value-1", sub="alice"), credential("token-value-2", sub="alice")]
    responses = [
        await http.post(tenant_url(acme, "/credentials"), json=batch, headers=operator),
        await http.post(tenant_url(acme, "/credentials"), json=batch, headers=operator),
        await http.post(
            tenant_url(acme, "/credentials"),
            json=credential("token-value-1", sub="mallory"),
            headers=operator,
        ),
        await put_client(http, operator, acme, "given", {"scope": "introspect"}),
        await http.delete(tenant_url(acme, "/subjects/alice/clients/app"), headers=operator),
    ]
    for path in (
        f"{API}/tenants",
        tenant_url(acme),
        tenant_url(acme, "/admin-keys"),
        tenant_url(acme, "/clients"),
        tenant_url(acme, "/clients/given"),
        tenant_url(acme, "/clients/generated"),
        tenant_url(acme, "/clients/jwt"),
        tenant_url(acme, "/subjects/alice/clients"),
        tenant_url(acme, "/events"),
    ):
        responses.append(await http.get(path, headers=operator))
    assert [r.status_code for r in responses[:3]] == [200, 200, 409]
    for response in responses:
        for secret in secrets:
            assert secret not in response.text, (response.url, secret)


async def test_unknown_admin_path_is_a_json_404(
    http: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    response = await http.get(f"{API}/nothing/here", headers=operator)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response.headers["cache-control"] == "no-store"
