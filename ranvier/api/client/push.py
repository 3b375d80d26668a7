"""Push notifications: spec client-server-api "Push Notifications" - push rules
(pushrules.yaml), /notifications (notifications.yaml) and pushers (pusher.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response, read_json_object
from ranvier.http.params import query_int, query_string
from ranvier.services.push.actions import PushActionService
from ranvier.services.push.pushers import PusherService
from ranvier.services.push.rules import PushRuleService, check_scope

CLIENT = "/_matrix/client/v3"
RULE = CLIENT + "/pushrules/{scope}/{kind}/{ruleId}"
DEFAULT_NOTIFICATIONS_LIMIT = 20


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
        ]

    async def _user(self, request: web.Request) -> str:
        user_id = (await self._auth.require_user(request)).user_id
        if "scope" in request.match_info:
            check_scope(request.match_info["scope"])
        return user_id

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
        body = await read_json_object(request)
        await self._rules.put_rule(
            user_id,
            match["kind"],
            match["ruleId"],
            body,
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
        body = await read_json_object(request)
        await self._rules.set_enabled(user_id, match["kind"], match["ruleId"], body.get("enabled"))
        return json_response({})

    async def get_actions(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
        user_id, match = await self._user(request), request.match_info
        actions = await self._rules.get_actions(user_id, match["kind"], match["ruleId"])
        return json_response({"actions": actions})

    async def set_actions(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
        user_id, match = await self._user(request), request.match_info
        body = await read_json_object(request)
        await self._rules.set_actions(user_id, match["kind"], match["ruleId"], body.get("actions"))
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
        user_id = (await self._auth.require_user(request)).user_id
        body = await read_json_object(request)
        await self._pushers.set_pusher(user_id, body)
        return json_response({})
