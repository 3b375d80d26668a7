"""Push notifications: spec client-server-api "Push Notifications" - push rules
(pushrules.yaml), /notifications (notifications.yaml) and pushers (pusher.yaml)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ConfigDict

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import (
    RequestBody,
    json_response,
    read_body,
    read_json_object,
    validate_body,
)
from ranvier.http.params import query_int, query_string
from ranvier.services.push.actions import PushActionService
from ranvier.services.push.pushers import PusherRequest, PusherService
from ranvier.services.push.rules import PushRuleService, check_scope

CLIENT = "/_matrix/client/v3"
RULE = CLIENT + "/pushrules/{scope}/{kind}/{ruleId}"
DEFAULT_NOTIFICATIONS_LIMIT = 20


class _RuleBody(RequestBody):
    # what each action and condition may be is protocol (protocol/push_rules.py)
    actions: list[Any]
    conditions: list[dict[str, Any]] | None = None
    pattern: str | None = None


class _EnabledBody(RequestBody):
    enabled: bool


class _ActionsBody(RequestBody):
    actions: list[Any]


class _PusherKey(RequestBody):
    app_id: str
    pushkey: str
    # required, and null deletes the pusher
    kind: str | None


class _PusherData(RequestBody):
    # kept whole: gateways read keys the spec does not name
    model_config = ConfigDict(extra="allow")
    # required for http pushers, which the service checks
    url: str | None = None
    format: str | None = None


class _PusherBody(_PusherKey):
    kind: str
    app_display_name: str
    device_display_name: str
    lang: str
    data: _PusherData
    profile_tag: str | None = None
    append: bool = False


class PushRuleEndpoints:
    def __init__(self, auth: RequestAuthenticator, rules: PushRuleService) -> None:
        self._auth = auth
        self._rules = rules

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/pushrules/", self.get_all),
            web.get(CLIENT + "/pushrules/{scope}/", self.get_global),
            web.get(CLIENT + "/pushrules/{scope}/{kind}/", self.get_kind),
            web.get(RULE, self.get_rule),
            web.put(RULE, self.put_rule),
            web.delete(RULE, self.delete_rule),
            web.get(RULE + "/enabled", self.get_enabled),
            web.put(RULE + "/enabled", self.set_enabled),
            web.get(RULE + "/actions", self.get_actions),
            web.put(RULE + "/actions", self.set_actions),
            # last: every other path under /pushrules/ names no scope, kind, rule or
            # attribute the API knows, which Synapse answers 400 M_UNRECOGNIZED, not 404
            # (SyTest: "/global" without its slash, an empty rule ID, an unknown attribute)
            web.route("*", CLIENT + "/pushrules/{tail:.*}", self.unrecognized),
        ]

    async def _user(self, request: web.Request) -> str:
        user_id = (await self._auth.require_user(request)).user_id
        if "scope" in request.match_info:
            check_scope(request.match_info["scope"])
        return user_id

    async def unrecognized(self, request: web.Request) -> web.Response:
        """Any other path under /_matrix/client/v3/pushrules/"""
        await self._auth.require_user(request)
        raise MatrixError(400, "M_UNRECOGNIZED", "Unrecognized push rules request")

    async def get_all(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/"""
        return json_response(await self._rules.get_all(await self._user(request)))

    async def get_global(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/"""
        return json_response(await self._rules.ruleset(await self._user(request)))

    async def get_kind(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/ (Synapse: the rules of one kind)"""
        user_id = await self._user(request)
        return json_response(await self._rules.get_kind(user_id, request.match_info["kind"]))

    async def get_rule(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        user_id, match = await self._user(request), request.match_info
        return json_response(await self._rules.get_rule(user_id, match["kind"], match["ruleId"]))

    async def put_rule(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        user_id, match = await self._user(request), request.match_info
        body = await read_body(request, _RuleBody)
        await self._rules.put_rule(
            user_id,
            match["kind"],
            match["ruleId"],
            actions=body.actions,
            conditions=body.conditions,
            pattern=body.pattern,
            before=query_string(request, "before"),
            after=query_string(request, "after"),
        )
        return json_response({})

    async def delete_rule(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        user_id, match = await self._user(request), request.match_info
        await self._rules.delete_rule(user_id, match["kind"], match["ruleId"])
        return json_response({})

    async def get_enabled(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
        user_id, match = await self._user(request), request.match_info
        enabled = await self._rules.get_enabled(user_id, match["kind"], match["ruleId"])
        return json_response({"enabled": enabled})

    async def set_enabled(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
        user_id, match = await self._user(request), request.match_info
        body = await read_body(request, _EnabledBody)
        await self._rules.set_enabled(user_id, match["kind"], match["ruleId"], body.enabled)
        return json_response({})

    async def get_actions(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
        user_id, match = await self._user(request), request.match_info
        actions = await self._rules.get_actions(user_id, match["kind"], match["ruleId"])
        return json_response({"actions": actions})

    async def set_actions(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
        user_id, match = await self._user(request), request.match_info
        body = await read_body(request, _ActionsBody)
        await self._rules.set_actions(user_id, match["kind"], match["ruleId"], body.actions)
        return json_response({})


class NotificationEndpoints:
    def __init__(self, auth: RequestAuthenticator, actions: PushActionService) -> None:
        self._auth = auth
        self._actions = actions

    def routes(self) -> list[web.RouteDef]:
        return [web.get(CLIENT + "/notifications", self.get_notifications)]

    async def get_notifications(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/notifications"""
        user_id = (await self._auth.require_user(request)).user_id
        limit = query_int(request, "limit", DEFAULT_NOTIFICATIONS_LIMIT, minimum=1)
        body = await self._actions.notifications(
            user_id, query_string(request, "from"), limit, query_string(request, "only")
        )
        return json_response(body)


class PusherEndpoints:
    def __init__(self, auth: RequestAuthenticator, pushers: PusherService) -> None:
        self._auth = auth
        self._pushers = pushers

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/pushers", self.get_pushers),
            web.post(CLIENT + "/pushers/set", self.set_pusher),
        ]

    async def get_pushers(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushers"""
        user_id = (await self._auth.require_user(request)).user_id
        return json_response({"pushers": await self._pushers.get_pushers(user_id)})

    async def set_pusher(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/pushers/set"""
        requester = await self._auth.require_user(request)
        user_id = requester.user_id
        raw = await read_json_object(request)
        key = validate_body(raw, _PusherKey)
        if key.kind is None:
            await self._pushers.delete_pusher(user_id, key.app_id, key.pushkey)
            return json_response({})
        body = validate_body(raw, _PusherBody)
        pusher = PusherRequest(
            app_id=body.app_id,
            pushkey=body.pushkey,
            kind=body.kind,
            app_display_name=body.app_display_name,
            device_display_name=body.device_display_name,
            lang=body.lang,
            profile_tag=body.profile_tag,
            data=body.data.model_dump(exclude_unset=True),
            url=body.data.url,
            format=body.data.format,
        )
        await self._pushers.set_pusher(user_id, requester.device_id, pusher, append=body.append)
        return json_response({})
