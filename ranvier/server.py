"""Builds one homeserver process from its config: stores, services and routes, then serves.

This is the one place where objects are wired together by constructor arguments.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from ranvier import __version__
from ranvier.api import root, wellknown
from ranvier.api.admin import background_updates as admin_background_updates
from ranvier.api.admin import event_reports as admin_event_reports_api
from ranvier.api.admin import federation as admin_federation_api
from ranvier.api.admin import media as admin_media_api
from ranvier.api.admin import purge_history as purge_history_api
from ranvier.api.admin import pushers as admin_pushers_api
from ranvier.api.admin import ratelimit_overrides as admin_ratelimit_overrides_api
from ranvier.api.admin import registration_tokens as admin_registration_tokens
from ranvier.api.admin import room_extremities as admin_room_extremities_api
from ranvier.api.admin import room_history as admin_room_history_api
from ranvier.api.admin import room_membership as admin_room_membership_api
from ranvier.api.admin import rooms as admin_rooms_api
from ranvier.api.admin import server_notices as admin_server_notices_api
from ranvier.api.admin import server_version
from ranvier.api.admin import shadow_ban as admin_shadow_ban_api
from ranvier.api.admin import sso as admin_sso_api
from ranvier.api.admin import statistics as admin_statistics_api
from ranvier.api.admin import suspension as admin_suspension_api
from ranvier.api.admin import user_redaction as admin_user_redaction_api
from ranvier.api.admin import username_available as admin_username_available_api
from ranvier.api.admin import users as admin_users_api
from ranvier.api.admin import users_activity as admin_user_activity_api
from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client import (
    account,
    devices,
    login,
    register,
    registration_token_validity,
    versions,
)
from ranvier.api.client import account_data as account_data_api
from ranvier.api.client import appservice_ping as appservice_ping_api
from ranvier.api.client import capabilities as capabilities_api
from ranvier.api.client import dehydrated_devices as dehydrated_devices_api
from ranvier.api.client import directory as directory_api
from ranvier.api.client import filter as filter_api
from ranvier.api.client import identity as identity_api
from ranvier.api.client import keys as keys_api
from ranvier.api.client import legacy as legacy_api
from ranvier.api.client import login_token as login_token_api
from ranvier.api.client import membership as membership_api
from ranvier.api.client import mutual_rooms as mutual_rooms_api
from ranvier.api.client import openid as openid_api
from ranvier.api.client import presence as presence_api
from ranvier.api.client import profile as profile_api
from ranvier.api.client import push as push_api
from ranvier.api.client import receipts as receipts_api
from ranvier.api.client import relations as relations_api
from ranvier.api.client import room_keys as room_keys_api
from ranvier.api.client import room_reading as room_reading_api
from ranvier.api.client import room_upgrades as room_upgrades_api
from ranvier.api.client import rooms as rooms_api
from ranvier.api.client import search as search_api
from ranvier.api.client import sliding_sync as sliding_sync_api
from ranvier.api.client import spaces as spaces_api
from ranvier.api.client import sync as sync_api
from ranvier.api.client import thirdparty as thirdparty_api
from ranvier.api.client import threepids as threepids_api
from ranvier.api.client import to_device as to_device_api
from ranvier.api.client import typing as typing_api
from ranvier.api.client import unsubscribe as unsubscribe_api
from ranvier.api.client import user_directory as user_directory_api
from ranvier.api.client import user_reports as user_reports_api
from ranvier.api.client import voip as voip_api
from ranvier.api.client.auth_fallback import AuthFallbackEndpoints, FallbackPages
from ranvier.api.client.consent import ConsentEndpoints
from ranvier.api.client.fallback_pages import RecaptchaPage, TermsPage
from ranvier.api.client.paths import with_legacy_prefixes
from ranvier.api.federation import events as federation_events
from ranvier.api.federation import hierarchy as federation_hierarchy
from ranvier.api.federation import invite as federation_invite
from ranvier.api.federation import keys as federation_keys
from ranvier.api.federation import knock as federation_knock
from ranvier.api.federation import leave as federation_leave
from ranvier.api.federation import make_join as federation_make_join
from ranvier.api.federation import media as federation_media
from ranvier.api.federation import openid as federation_openid
from ranvier.api.federation import public_rooms as federation_public_rooms
from ranvier.api.federation import query as federation_query
from ranvier.api.federation import send as federation_send
from ranvier.api.federation import send_join as federation_send_join
from ranvier.api.federation import third_party_invites as federation_third_party_invites
from ranvier.api.federation import user_keys as federation_user_keys
from ranvier.api.federation import version as federation_version
from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.api.media import content as media_api
from ranvier.api.media import preview as preview_api
from ranvier.config.generate import SYNAPSE_IP_RANGE_BLACKLIST
from ranvier.config.models import (
    REDACTIONS_CACHE_BASE,
    STATE_GROUPS_CACHE_BASE,
    HomeserverConfig,
    Listener,
    RatelimitSettings,
)
from ranvier.config.signing_key import load_signing_key
from ranvier.config.tls import ServerCertificate
from ranvier.config.validation import key_server_warning
from ranvier.errors import MatrixError
from ranvier.federation.backoff import Backoff, BackoffSettings
from ranvier.federation.client import (
    DomainWhitelist,
    FederationClient,
    FederationRequests,
    RetrySettings,
)
from ranvier.federation.connections import Connections
from ranvier.federation.discovery import ServerDiscovery
from ranvier.federation.queue import FederationSender
from ranvier.federation.tls import TlsPolicy
from ranvier.http.metrics import RequestRecorder, metrics_routes
from ranvier.http.middleware import (
    cors_middleware,
    matrix_error_middleware,
    request_id_middleware,
    request_text_middleware,
)
from ranvier.http.ratelimit import X_FORWARDED, Ratelimiter, Ratelimiters
from ranvier.logs import reopen_log_files
from ranvier.metrics import federation as federation_metrics
from ranvier.metrics import registry as metrics_registry
from ranvier.metrics.events import (
    BackgroundUpdateProgress,
    PersistedEventCounter,
    WaitingLongPolls,
    count_notification,
)
from ranvier.metrics.federation import PendingQueues
from ranvier.metrics.http import RequestMetrics
from ranvier.protocol.ip_addresses import AddressPolicy
from ranvier.protocol.server_keys import OldVerifyKey
from ranvier.protocol.signing_keys import ServerSigningKey, decode_verify_key
from ranvier.services.account_data import AccountDataService, GlobalAccountDataCache
from ranvier.services.accounts import REGISTRATION_TOKEN, AccountService
from ranvier.services.admin_user_activity import AdminUserActivity
from ranvier.services.admin_users import AdminUserService
from ranvier.services.appservice.client import AppServiceClient
from ranvier.services.appservice.ephemeral import EphemeralCollector, StreamSources
from ranvier.services.appservice.interest import AppServiceInterest
from ranvier.services.appservice.overview import log_registrations
from ranvier.services.appservice.ping import AppServicePing
from ranvier.services.appservice.queries import AppServiceQueries
from ranvier.services.appservice.registry import AppServiceRegistry
from ranvier.services.appservice.room_list import AppServiceRoomList
from ranvier.services.appservice.transactions import AppServiceTransactionSender
from ranvier.services.appservice.users import AppServiceUsers
from ranvier.services.captcha import STAGE_TYPE as RECAPTCHA
from ranvier.services.captcha import RecaptchaStage, RecaptchaVerifier
from ranvier.services.consent import STAGE_TYPE as TERMS
from ranvier.services.consent import ConsentService
from ranvier.services.dehydrated_devices import DehydratedDeviceService
from ranvier.services.device_lists import DeviceListService
from ranvier.services.devices import DeviceService
from ranvier.services.e2e_keys import E2eKeyService
from ranvier.services.email.mailer import Mailer
from ranvier.services.federation.destinations import DestinationAdminService
from ranvier.services.federation.device_lists import (
    DEVICE_LIST_UPDATE,
    SIGNING_KEY_UPDATE,
    DeviceListPublisher,
    RemoteDeviceLists,
)
from ranvier.services.federation.e2e_keys import FederationKeyService, RemoteE2eKeys
from ranvier.services.federation.edu_outbox import EduOutbox, joined_servers_lookup
from ranvier.services.federation.edus import EduDispatcher
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.federation.history import FederationHistory
from ranvier.services.federation.invites import InviteService
from ranvier.services.federation.joins import MakeJoinService
from ranvier.services.federation.keyring import Keyring, OwnKeys, TrustedKeyServer
from ranvier.services.federation.memberships import MakeMembershipService
from ranvier.services.federation.out_of_band import OutOfBandMemberships
from ranvier.services.federation.presence_edus import PRESENCE_EDU, PresenceFederation
from ranvier.services.federation.queries import RemoteQueries
from ranvier.services.federation.receipt_edus import RECEIPT_EDU, ReceiptFederation
from ranvier.services.federation.remote_history import RemoteHistory
from ranvier.services.federation.remote_joins import RemoteJoins
from ranvier.services.federation.remote_memberships import RemoteMemberships
from ranvier.services.federation.send_join import SendJoinService
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.federation.server_visibility import ServerVisibility
from ranvier.services.federation.to_device import (
    DIRECT_TO_DEVICE,
    InboundToDevice,
    ToDeviceRelay,
)
from ranvier.services.federation.transactions import TransactionService
from ranvier.services.federation.typing_edus import TYPING_EDU, TypingFederation
from ranvier.services.filters import FilterService
from ranvier.services.identity_server import IdentityServerBindings, IdentityServerClient
from ranvier.services.jwt_login import JwtLogin
from ranvier.services.key_backup import KeyBackupService
from ranvier.services.legacy_sync import LegacySyncService
from ranvier.services.login import LoginService, PasswordStage
from ranvier.services.media.files import MediaFiles
from ranvier.services.media.remote import FileFetcher, remote_media_cache
from ranvier.services.media.retention import MediaRetention
from ranvier.services.media.service import MediaService
from ranvier.services.media.url_preview.fetcher import PreviewFetcher
from ranvier.services.media.url_preview.service import (
    MediaRepositoryImages,
    PreviewImageStore,
    UrlPatterns,
    UrlPreviewService,
)
from ranvier.services.mutual_rooms import MutualRoomsService
from ranvier.services.openid import OpenIdService
from ranvier.services.passwords import PasswordHasher
from ranvier.services.presence import PresenceService
from ranvier.services.profiles import ProfileService, RemoteProfileQuery, SharedRoomCheck
from ranvier.services.push.actions import PushActionService
from ranvier.services.push.email_mail import NotificationMail, UnsubscribeLinks
from ranvier.services.push.email_pusher import EmailPushers
from ranvier.services.push.email_unsubscribe import EmailUnsubscribe
from ranvier.services.push.pushers import PusherService
from ranvier.services.push.rules import PushRuleService
from ranvier.services.ratelimit_overrides import RatelimitOverrides
from ranvier.services.receipts import ReceiptService
from ranvier.services.registration_tokens import RegistrationTokenService
from ranvier.services.retention import (
    ForgottenRoomPurger,
    RedactionPruner,
    RetentionPurgeJobs,
    RoomRetention,
    check_retention_content,
)
from ranvier.services.rooms.admin import RoomAdminService
from ranvier.services.rooms.admin_extremities import RoomExtremitiesAdmin
from ranvier.services.rooms.admin_history import RoomHistoryAdmin
from ranvier.services.rooms.admin_membership import RoomAdminMembership
from ranvier.services.rooms.admin_user_redaction import UserRedactions
from ranvier.services.rooms.aliases import AliasService, RemoteDirectoryQuery
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.client_redactions import RedactionService
from ranvier.services.rooms.client_sends import EventSendingService
from ranvier.services.rooms.deletion import RoomDeletionService
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.forget_on_leave import RoomForgetter
from ranvier.services.rooms.hierarchy import SpaceHierarchyService
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.public_rooms import PublicRoomsService
from ranvier.services.rooms.purge_history import HistoryPurgeService
from ranvier.services.rooms.reading import RoomReadingService
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.services.rooms.relations import RelationsService
from ranvier.services.rooms.reports import ReportService
from ranvier.services.rooms.room_access import RoomAccess
from ranvier.services.rooms.room_creation import RoomCreationService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.services.rooms.upgrade import RoomUpgradeService
from ranvier.services.rooms.upgrade_transfer import UpgradeUserStateTransfer
from ranvier.services.rooms.visibility import HistoryVisibility
from ranvier.services.search import SearchService
from ranvier.services.server_notices import ServerNoticesService
from ranvier.services.shadow_bans import ShadowBans
from ranvier.services.sliding_sync.bump_stamps import prepare_bump_stamps
from ranvier.services.sliding_sync.extensions import SlidingSyncExtensions
from ranvier.services.sliding_sync.facts import RoomFactsLoader
from ranvier.services.sliding_sync.room_list_cache import RoomListCache
from ranvier.services.sliding_sync.rooms import SlidingSyncRooms
from ranvier.services.sliding_sync.service import SlidingSyncService
from ranvier.services.sso.external_ids import ExternalIds
from ranvier.services.statistics import AdminStatistics
from ranvier.services.suspension import Suspensions
from ranvier.services.sync.account_data import AccountDataReader
from ranvier.services.sync.rooms import RoomsBuilder
from ranvier.services.sync.sections import (
    DeviceListsSection,
    PresenceSection,
    RoomEphemeralSection,
    ToDeviceSection,
)
from ranvier.services.sync.service import SyncService
from ranvier.services.sync.state import StateLoader
from ranvier.services.sync.timeline import TimelineLoader
from ranvier.services.sync.wakeups import RoomEventWakeups
from ranvier.services.templates import Templates
from ranvier.services.third_party_invites import ThirdPartyInvites
from ranvier.services.thirdparty import ThirdPartyLookup
from ranvier.services.threepids import EMAIL_IDENTITY, EmailIdentityStage, ThreepidService
from ranvier.services.to_device import ToDeviceService
from ranvier.services.tokens import AccessTokens
from ranvier.services.typing import TypingService
from ranvier.services.uia import PASSWORD, SESSION_LIFETIME_MS, UserInteractiveAuth
from ranvier.services.user_directory import POPULATE_USER_DIRECTORY, UserDirectoryService
from ranvier.services.user_reports import UserReportService
from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.appservices import AppServiceStore, AppServiceStreams
from ranvier.storage.background_updates import BackgroundUpdater
from ranvier.storage.database import Database
from ranvier.storage.dehydrated_devices import DehydratedDeviceStore
from ranvier.storage.destinations import DestinationStore
from ranvier.storage.device_inbox import DeviceInboxStore
from ranvier.storage.device_lists import DeviceChangeLog, DeviceListStore
from ranvier.storage.devices import DeviceStore
from ranvier.storage.e2e_keys import E2eKeyStore
from ranvier.storage.email_notifications import EmailThrottleStore
from ranvier.storage.event_push_actions import EventPushActionStore
from ranvier.storage.filters import FilterStore
from ranvier.storage.forward_extremities import ForwardExtremityQueries
from ranvier.storage.history_purge import HistoryPurgeStore
from ranvier.storage.key_backup import KeyBackupStore
from ranvier.storage.media import MediaStore
from ranvier.storage.media_remote_cache import RemoteMediaCacheStore
from ranvier.storage.openid import OpenIdTokenStore
from ranvier.storage.presence import PresenceStore
from ranvier.storage.profiles import ProfileStore
from ranvier.storage.push_rules import PushRuleStore
from ranvier.storage.pushers import PusherStore
from ranvier.storage.ratelimit_overrides import RatelimitOverrideStore
from ranvier.storage.receipts import ReceiptStore
from ranvier.storage.registration_tokens import RegistrationTokenStore
from ranvier.storage.remote_devices import RemoteDeviceStore
from ranvier.storage.reports import ReportStore
from ranvier.storage.room_admin import RoomAdminStore
from ranvier.storage.schema import prepare_database
from ranvier.storage.server_hold import hold_for_server
from ranvier.storage.server_keys import ServerKeyStore
from ranvier.storage.server_notices import ServerNoticeRooms
from ranvier.storage.sso import ExternalIdStore, ProviderSessionStore, SsoSessionStore
from ranvier.storage.statistics import StatisticsQueries
from ranvier.storage.threepid_bindings import ThreepidBindingStore
from ranvier.storage.threepids import ThreepidStore
from ranvier.storage.tokens import TokenStore
from ranvier.storage.ui_auth import UIAuthStore
from ranvier.storage.url_previews import UrlPreviewStore
from ranvier.storage.user_admin import UserAdminQueries
from ranvier.storage.user_events import UserEventQueries
from ranvier.storage.users import UserStore
from ranvier.streams.notifier import Notifier
from ranvier.streams.sync_token import SyncToken

if TYPE_CHECKING:
    from ranvier.api.client.sso import SsoEndpoints
    from ranvier.services.sso.service import SsoService

logger = logging.getLogger(__name__)

# how long requests in flight get to finish after SIGTERM (long-polls answer at once), so
# that the process is gone within about two seconds, as service managers expect
SHUTDOWN_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Accounts:
    """Users, devices, tokens and the authentication of requests."""

    users: UserStore
    access_tokens: AccessTokens
    # the one per process: its thread pool bounds how many hashes run at once
    hasher: PasswordHasher
    auth: RequestAuthenticator
    uia: UserInteractiveAuth
    login: LoginService
    devices: DeviceService
    accounts: AccountService
    # the accounts application services act as and register
    appservice_users: AppServiceUsers


@dataclass(frozen=True)
class AppServices:
    """The registered application services (bridges, bots) and the client that calls them."""

    registry: AppServiceRegistry
    client: AppServiceClient


def build_appservices(config: HomeserverConfig) -> AppServices:
    return AppServices(
        registry=AppServiceRegistry(config.appservices),
        client=AppServiceClient(legacy_authorization=config.use_appservice_legacy_authorization),
    )


def build_accounts(
    config: HomeserverConfig, database: Database, appservices: AppServiceRegistry | None = None
) -> Accounts:
    users = UserStore(database)
    tokens = TokenStore(database)
    device_store = DeviceStore(database)
    access_tokens = AccessTokens(tokens, device_store)
    users.on_user_changed(access_tokens.invalidate_user)
    if appservices is None:
        appservices = AppServiceRegistry(config.appservices)
    appservice_users = AppServiceUsers(appservices, users, device_store, config.server_name)
    hasher = PasswordHasher(config.password_config)
    device_service = DeviceService(device_store, tokens, access_tokens)
    login_service = LoginService(
        config, users, tokens, access_tokens, device_service, hasher, ThreepidStore(database)
    )
    uia = UserInteractiveAuth(UIAuthStore(database))
    uia.register_stage(PASSWORD, PasswordStage(login_service))
    account_service = AccountService(
        config,
        users,
        hasher,
        login_service,
        device_service,
        access_tokens,
        appservices,
        ExternalIdStore(database),
    )
    return Accounts(
        users=users,
        access_tokens=access_tokens,
        hasher=hasher,
        auth=RequestAuthenticator(
            access_tokens,
            appservices,
            appservice_users,
            track_appservice_user_ips=config.track_appservice_user_ips,
        ),
        uia=uia,
        login=login_service,
        devices=device_service,
        accounts=account_service,
        appservice_users=appservice_users,
    )


@dataclass(frozen=True)
class UserData:
    """What users keep on the server besides their account: profiles, account data and
    room tags, filters."""

    profiles: ProfileService
    account_data: AccountDataService
    filters: FilterService


def build_user_data(
    config: HomeserverConfig,
    database: Database,
    shares_room: SharedRoomCheck,
    remote_profiles: RemoteProfileQuery,
    global_account_data: GlobalAccountDataCache,
) -> UserData:
    # `shares_room` comes from the rooms' membership service, which also subscribes to
    # profile changes (ProfileService.on_change) to update m.room.member events
    account_data = AccountDataService(AccountDataStore(database))
    account_data.on_change.append(global_account_data.invalidate)
    return UserData(
        profiles=ProfileService(
            config, ProfileStore(database), shares_room, remote=remote_profiles
        ),
        account_data=account_data,
        filters=FilterService(config, FilterStore(database)),
    )


def build_key_backup(database: Database, accounts: Accounts) -> KeyBackupService:
    """Server-side room key backups; a deactivated user's backups are deleted."""
    key_backup = KeyBackupService(KeyBackupStore(database))
    accounts.accounts.on_deactivated.append(key_backup.delete_user_backups)
    return key_backup


@dataclass(frozen=True)
class Admin:
    """The server admin's tools: registration tokens and the user admin API."""

    registration_tokens: RegistrationTokenService
    users: AdminUserService
    # a user's devices, sessions, rooms and account data
    user_activity: AdminUserActivity
    server_notices: ServerNoticesService
    # putting local users into rooms
    room_membership: RoomAdminMembership
    shadow_bans: ShadowBans
    statistics: AdminStatistics
    ratelimit_overrides: RatelimitOverrides
    room_extremities: RoomExtremitiesAdmin
    user_redactions: UserRedactions
    room_history: RoomHistoryAdmin


def build_admin(
    config: HomeserverConfig,
    database: Database,
    accounts: Accounts,
    user_data: UserData,
    rooms: Rooms,
) -> Admin:
    registration_tokens = RegistrationTokenService(
        RegistrationTokenStore(database, SESSION_LIFETIME_MS)
    )
    accounts.uia.register_stage(REGISTRATION_TOKEN, registration_tokens.stage())
    users = AdminUserService(
        config,
        UserAdminQueries(database),
        accounts.users,
        accounts.accounts,
        accounts.login,
        accounts.devices,
        user_data.profiles,
        accounts.hasher,
        ThreepidStore(database),
        ExternalIds(ExternalIdStore(database)),
    )
    shadow_bans = ShadowBans(config.server_name, accounts.users, rooms.sender)
    rooms.sending.add_interceptor(shadow_bans.intercept)
    user_activity = AdminUserActivity(
        config.server_name,
        accounts.users,
        accounts.devices,
        accounts.access_tokens,
        rooms.membership,
        user_data.account_data,
        UserEventQueries(database),
    )
    server_notices = ServerNoticesService(
        config.server_notices,
        config.server_name,
        accounts.users,
        accounts.accounts,
        user_data.profiles,
        rooms.creation,
        rooms.membership,
        rooms.sending,
        user_data.account_data,
        ServerNoticeRooms(database),
    )
    return Admin(
        registration_tokens=registration_tokens,
        users=users,
        user_activity=user_activity,
        server_notices=server_notices,
        room_membership=RoomAdminMembership(
            config.server_name, accounts.users, rooms.membership, rooms.sender
        ),
        shadow_bans=shadow_bans,
        statistics=AdminStatistics(StatisticsQueries(database, config.server_name)),
        ratelimit_overrides=RatelimitOverrides(
            config.server_name, accounts.users, RatelimitOverrideStore(database)
        ),
        room_extremities=RoomExtremitiesAdmin(
            ForwardExtremityQueries(database), rooms.membership, rooms.sender
        ),
        user_redactions=UserRedactions(
            config.server_name, accounts.users, UserEventQueries(database), rooms.redacting
        ),
        room_history=RoomHistoryAdmin(rooms.membership, rooms.sender),
    )


@dataclass(frozen=True)
class Rooms:
    """The room DAG and everything that writes to it."""

    sender: RoomEventSender
    membership: MembershipService
    upgrades: RoomUpgradeService
    creation: RoomCreationService
    sending: EventSendingService
    serializer: ClientEventSerializer
    visibility: HistoryVisibility
    # rooms' message retention policies, which visibility applies
    retention: RoomRetention
    redactions: Redactions
    search: SearchService
    user_directory: UserDirectoryService
    aliases: AliasService
    public_rooms: PublicRoomsService
    # the rooms application services publish in their networks' directories
    appservice_room_list: AppServiceRoomList
    spaces: SpaceHierarchyService
    relations: RelationsService
    reading: RoomReadingService
    redacting: RedactionService
    reports: ReportService
    # invites of our users by other servers' (and the countersigning of ours)
    invites: InviteService


async def build_rooms(
    config: HomeserverConfig,
    database: Database,
    signing_key: ServerSigningKey,
    remote_aliases: RemoteDirectoryQuery,
    federation_client: FederationClient,
    keyring: Keyring,
    appservice_queries: AppServiceQueries,
    appservices: AppServiceRegistry,
    global_account_data: GlobalAccountDataCache,
) -> Rooms:
    caches = config.caches
    loader = EventLoader(
        database,
        events_cache_size=caches.size("events", config.event_cache_size),
        state_cache_size=caches.size("state_groups", STATE_GROUPS_CACHE_BASE),
        cache_ttl_seconds=caches.ttl_seconds,
    )
    sender = await RoomEventSender.create(database, loader, config.server_name, signing_key)
    redactions = Redactions(
        database,
        loader,
        cache_size=caches.size("redactions", REDACTIONS_CACHE_BASE),
        cache_ttl_seconds=caches.ttl_seconds,
    )
    serializer = ClientEventSerializer(database, loader, redactions)
    retention = RoomRetention(config.retention, database, loader)
    visibility = HistoryVisibility(database, loader, global_account_data, retention)
    relations = RelationsService(database, loader, serializer, visibility, redactions)
    search = SearchService(database, loader, visibility, serializer, redactions)
    sender.in_persist_transaction.append(search.index_in_transaction)
    user_directory = UserDirectoryService(config.user_directory, database, config.server_name)
    profiles = ProfileStore(database)

    async def profile_of(user_id: str) -> tuple[str | None, str | None]:
        profile = await profiles.get_profile(user_id)
        return (profile.displayname, profile.avatar_url) if profile else (None, None)

    access = RoomAccess(sender, loader)
    aliases = AliasService(
        database,
        sender,
        access,
        config.server_name,
        require_membership=config.require_membership_for_aliases,
        remote=remote_aliases,
        appservices=appservices,
        provider=appservice_queries.ask_for_alias,
    )
    sending = EventSendingService(sender)
    sending.add_state_validator("m.room.canonical_alias", aliases.check_canonical_alias)
    sending.add_message_validator(relations.check_new_relation)
    if config.retention.enabled:
        sending.add_state_validator("m.room.retention", check_retention_content)
    out_of_band = OutOfBandMemberships(sender, config.server_name)
    users = UserStore(database)

    async def user_status(user_id: str) -> tuple[bool, bool]:
        user = await users.get_user(user_id)
        if user is None and await appservice_queries.ask_for_user(user_id):
            # another server invites a bridge's puppet: its service may create it now
            user = await users.get_user(user_id)
        return user is not None, user is not None and user.deactivated

    invites = InviteService(
        sender=sender,
        out_of_band=out_of_band,
        verifier=EventVerifier(keyring),
        keyring=keyring,
        client=federation_client,
        acl=ServerAclChecker(access),
        user_status=user_status,
        server_name=config.server_name,
        signing_key=signing_key,
    )
    remote_memberships = RemoteMemberships(
        client=federation_client,
        invites=invites,
        out_of_band=out_of_band,
        server_name=config.server_name,
        signing_key=signing_key,
    )
    remote_joins = RemoteJoins(
        database,
        sender,
        EventVerifier(keyring),
        federation_client,
        remote_aliases,
        config.server_name,
        signing_key,
    )
    membership = MembershipService(
        sender,
        config.server_name,
        profile_of,
        remote_memberships=remote_memberships,
        remote_joins=remote_joins,
        local_alias=aliases.local_room_id,
        user_provider=appservice_queries.ask_for_user,
    )
    sending.add_state_follow_up("m.room.guest_access", membership.on_guest_access_changed)
    appservice_room_list = AppServiceRoomList(database)
    return Rooms(
        sender=sender,
        membership=membership,
        upgrades=RoomUpgradeService(sender, config.server_name, profile_of),
        creation=RoomCreationService(
            sender,
            config.server_name,
            config.default_room_version,
            profile_of,
            remote_inviter=membership.invite,
            alias_check=aliases.check_alias_namespace,
            user_provider=appservice_queries.ask_for_user,
        ),
        sending=sending,
        aliases=aliases,
        relations=relations,
        public_rooms=PublicRoomsService(
            database,
            loader,
            access,
            config.server_name,
            federation_client,
            appservice_room_list,
            enable_room_list_search=config.enable_room_list_search,
            allow_over_federation=config.allow_public_rooms_over_federation,
        ),
        appservice_room_list=appservice_room_list,
        spaces=SpaceHierarchyService(
            database, sender, loader, federation_client, config.server_name, aliases.resolve
        ),
        serializer=serializer,
        visibility=visibility,
        retention=retention,
        redactions=redactions,
        search=search,
        user_directory=user_directory,
        reading=RoomReadingService(
            database,
            loader,
            visibility,
            serializer,
            relations.bundled_aggregations,
            RemoteHistory(
                database,
                loader,
                federation_client,
                EventVerifier(keyring),
                sender,
                config.server_name,
            ).closest_event,
        ),
        redacting=RedactionService(sender, sending, loader, redactions),
        reports=ReportService(database, ReportStore(database), loader, serializer),
        invites=invites,
    )


@dataclass(frozen=True)
class RoomAdmin:
    """The server admin's tools for rooms: the room admin API, blocking, deleting,
    purging history."""

    rooms: RoomAdminService
    deletion: RoomDeletionService
    history_purges: HistoryPurgeService
    # the `retention` section's purge jobs, through history_purges
    retention_purges: RetentionPurgeJobs
    # redaction_retention_period: prunes redacted events' original content
    redaction_pruner: RedactionPruner
    # forgotten_room_retention_period: purges rooms every local user forgot
    forgotten_rooms: ForgottenRoomPurger


async def build_room_admin(config: HomeserverConfig, database: Database, rooms: Rooms) -> RoomAdmin:
    store = RoomAdminStore(database, config.server_name)
    admin = RoomAdminService(store, rooms.sender, rooms.serializer)
    rooms.sender.before_send.append(admin.refuse_joins_to_blocked_rooms)
    rooms.membership.join_checks.append(admin.refuse_blocked_room)
    deletion = RoomDeletionService(store, rooms.sender, rooms.creation, rooms.membership)
    await deletion.recover()
    history_purges = HistoryPurgeService(
        HistoryPurgeStore(database, config.server_name), rooms.sender.loader
    )
    return RoomAdmin(
        rooms=admin,
        deletion=deletion,
        history_purges=history_purges,
        retention_purges=RetentionPurgeJobs(rooms.retention, database, history_purges),
        redaction_pruner=RedactionPruner(
            config.redaction_retention_period, database, rooms.sender.loader, rooms.redactions
        ),
        forgotten_rooms=ForgottenRoomPurger(
            config.forgotten_room_retention_period, database, config.server_name, deletion
        ),
    )


@dataclass(frozen=True)
class Ephemeral:
    """What /sync carries besides rooms' events: typing, receipts and read markers,
    presence, to-device messages. Each is a sync source and wakes long-polls through the
    notifier."""

    typing: TypingService
    receipts: ReceiptService
    presence: PresenceService
    to_device: ToDeviceService


async def build_ephemeral(
    config: HomeserverConfig,
    database: Database,
    rooms: Rooms,
    user_data: UserData,
    notifier: Notifier,
    federation_sender: FederationSender | None,
) -> Ephemeral:
    membership = rooms.membership

    async def is_joined(room_id: str, user_id: str) -> bool:
        return room_id in await membership.joined_rooms(user_id)

    presence = await PresenceService.create(
        PresenceStore(database),
        membership.shares_room,
        membership.joined_rooms,
        notifier.notify,
        server_name=config.server_name,
        enabled=config.presence.enabled,
    )
    # sending, typing and reading count as activity for presence
    typing = TypingService(is_joined, notifier.notify, presence.bump_active)
    return Ephemeral(
        typing=typing,
        receipts=await ReceiptService.create(
            ReceiptStore(database),
            user_data.account_data,
            is_joined,
            notifier.notify,
            presence.bump_active,
        ),
        presence=presence,
        to_device=await ToDeviceService.create(
            DeviceInboxStore(database),
            config.server_name,
            notifier.notify,
            # other servers' users' messages go out in their servers' transactions
            relay=None if federation_sender is None else ToDeviceRelay(federation_sender),
        ),
    )


@dataclass(frozen=True)
class Push:
    """Push rules, the notifications they make of new events with unread counts, and
    pushers that deliver them to push gateways."""

    rules: PushRuleService
    actions: PushActionService
    pushers: PusherService
    # the unsubscribe links of notification mails; None without email.enable_notifs
    unsubscribe: EmailUnsubscribe | None = None


def build_email_pushers(
    config: HomeserverConfig,
    database: Database,
    actions: PushActionService,
    rooms: Rooms,
    signing_key: ServerSigningKey,
) -> tuple[EmailPushers, UnsubscribeLinks] | None:
    """Notification mails (email.enable_notifs): None when they are off."""
    email = config.email
    if email is None or not email.enable_notifs:
        return None
    links = UnsubscribeLinks(
        bytes(signing_key.signing_key),
        config.public_baseurl or f"https://{config.server_name}/",
    )
    mail = NotificationMail(
        db=database,
        loader=rooms.sender.loader,
        templates=Templates(config.templates.custom_template_directory, email.template_dir),
        mailer=Mailer(email, config.server_name),
        config=email,
        unsubscribe=links,
    )
    threepids = ThreepidStore(database)

    async def has_validated_email(user_id: str, address: str) -> bool:
        # an address is only bound to an account once validated; bound addresses are
        # stored case-folded
        return await threepids.owner("email", address.strip().casefold()) == user_id

    pushers = EmailPushers(
        pushers=PusherStore(database),
        throttles=EmailThrottleStore(database),
        actions=actions,
        mail=mail,
        delay_before_mail_ms=email.notif_delay_before_mail,
        current_stream_ordering=lambda: rooms.sender.positions.current,
        has_validated_email=has_validated_email,
    )
    return pushers, links


@dataclass(frozen=True)
class Identity:
    """Identity servers: bindings of users' third-party identifiers, and invites by
    email address."""

    client: IdentityServerClient
    bindings: IdentityServerBindings
    third_party_invites: ThirdPartyInvites


def build_identity(
    config: HomeserverConfig, database: Database, signing_key: ServerSigningKey, rooms: Rooms
) -> Identity:
    client = IdentityServerClient(config.server_name, signing_key)
    return Identity(
        client=client,
        bindings=IdentityServerBindings(client, ThreepidBindingStore(database)),
        third_party_invites=ThirdPartyInvites(
            database,
            client,
            rooms.membership,
            rooms.sending,
            rooms.sender.loader,
            config.server_name,
            web_client_location=(
                config.email.invite_client_location if config.email is not None else None
            ),
        ),
    )


async def build_push(
    config: HomeserverConfig,
    database: Database,
    accounts: Accounts,
    rooms: Rooms,
    user_data: UserData,
    ephemeral: Ephemeral,
    notifier: Notifier,
    signing_key: ServerSigningKey,
) -> Push:
    rules = await PushRuleService.create(PushRuleStore(database), notifier.notify)
    user_data.account_data.serve_generated("m.push_rules", rules.get_all)
    loader = rooms.sender.loader
    actions = PushActionService(
        database,
        EventPushActionStore(database),
        rules,
        loader,
        rooms.serializer,
        config.server_name,
    )
    if config.push.enabled:
        # written with the events, so a long-poll they wake reads the counts
        rooms.sender.prepare_persist.append(actions.prepare)
    ephemeral.receipts.on_receipt.append(actions.on_receipt)
    email = build_email_pushers(config, database, actions, rooms, signing_key)
    pushers = PusherService(
        database,
        PusherStore(database),
        actions,
        loader,
        lambda: rooms.sender.positions.current,
        server_name=config.server_name,
        get_user=accounts.users.get_user,
        include_content=config.push.include_content,
        group_unread_count_by_room=config.push.group_unread_count_by_room,
        email=None if email is None else email[0],
    )
    actions.on_new_actions.append(pushers.on_new_actions)
    # a receipt changes the badge count the user's devices show
    actions.on_read.append(pushers.on_read)
    accounts.users.on_user_changed(pushers.on_user_changed)
    # a logged-out device's pushers go with it (logout, device deletion, password change)
    accounts.devices.on_devices_deleted.append(pushers.remove_for_devices)
    return Push(
        rules=rules,
        actions=actions,
        pushers=pushers,
        unsubscribe=None if email is None else EmailUnsubscribe(email[1], pushers),
    )


@dataclass(frozen=True)
class E2ee:
    """End-to-end encryption keys and the device_lists stream that tells room-mates to
    fetch them again."""

    keys: E2eKeyService
    device_lists: DeviceListService
    # other servers' users' device lists, cached while we share a room with them
    remote_device_lists: RemoteDeviceLists
    # our users' devices and keys as other servers ask for them
    federation_keys: FederationKeyService


async def build_e2ee(
    config: HomeserverConfig,
    database: Database,
    accounts: Accounts,
    rooms: Rooms,
    notifier: Notifier,
    federation: Federation,
) -> E2ee:
    key_store = E2eKeyStore(database)
    changes = DeviceChangeLog(database)
    joined_rooms = rooms.membership.joined_rooms
    publisher = None
    if federation.sender is not None:
        publisher = DeviceListPublisher(
            database,
            federation.sender,
            changes,
            DeviceStore(database),
            key_store,
            joined_rooms,
            config.server_name,
            include_display_names=config.allow_device_name_lookup_over_federation,
        )
    device_lists = await DeviceListService.create(
        database,
        DeviceListStore(database),
        key_store,
        joined_rooms,
        notifier.notify,
        publish=None if publisher is None else publisher.publish,
    )
    # renaming or deleting a device changes what room-mates see in /keys/query
    accounts.devices.on_device_list_change.append(device_lists.changed)
    remote_device_lists = RemoteDeviceLists(
        database,
        RemoteDeviceStore(database),
        federation.client,
        device_lists,
        joined_rooms,
        config.server_name,
    )
    keys = E2eKeyService(
        key_store,
        device_lists,
        RemoteE2eKeys(federation.client, remote_device_lists),
        config.server_name,
    )
    return E2ee(
        keys=keys,
        device_lists=device_lists,
        remote_device_lists=remote_device_lists,
        federation_keys=FederationKeyService(
            keys,
            changes,
            config.server_name,
            include_display_names=config.allow_device_name_lookup_over_federation,
        ),
    )


def connect_e2ee_edus(
    config: HomeserverConfig, e2ee: E2ee, ephemeral: Ephemeral, edus: EduDispatcher
) -> None:
    """Other servers' device list and cross-signing changes, and their users' to-device
    messages, through the EDU dispatcher."""
    edus.register(DEVICE_LIST_UPDATE, e2ee.remote_device_lists.on_device_list_update)
    edus.register(SIGNING_KEY_UPDATE, e2ee.remote_device_lists.on_signing_key_update)
    inbound = InboundToDevice(ephemeral.to_device, config.server_name)
    edus.register(DIRECT_TO_DEVICE, inbound.on_direct_to_device)


@dataclass
class Federation:
    """The outbound client, the transaction queue (None with send_federation off), and
    what the admin API shows of the servers it talks to."""

    client: FederationClient
    destinations: DestinationAdminService
    domain_whitelist: DomainWhitelist
    sender: FederationSender | None


def build_federation(
    config: HomeserverConfig, database: Database, signing_key: ServerSigningKey
) -> Federation:
    # as Synapse: the deprecated federation_ip_range_blacklist, when set, is federation's
    # whole list (no whitelist); otherwise ip_range_blacklist (Synapse's default list when
    # unset) with ip_range_whitelist's exceptions
    if config.federation_ip_range_blacklist is not None:
        addresses = AddressPolicy.from_config(config.federation_ip_range_blacklist)
    else:
        blacklist = config.ip_range_blacklist
        addresses = AddressPolicy.from_config(
            SYNAPSE_IP_RANGE_BLACKLIST if blacklist is None else blacklist,
            config.ip_range_whitelist,
        )
    connections = Connections(addresses)
    tls = TlsPolicy(
        verify=config.federation_verify_certificates,
        verification_whitelist=config.federation_certificate_verification_whitelist,
        custom_ca_files=config.federation_custom_ca_list,
        minimum_version=config.federation_client_minimum_tls_version,
    )
    settings = config.federation
    store = DestinationStore(database)
    backoff = Backoff(
        store,
        BackoffSettings(
            min_retry_interval_ms=settings.destination_min_retry_interval,
            retry_multiplier=settings.destination_retry_multiplier,
            max_retry_interval_ms=settings.destination_max_retry_interval,
        ),
    )
    whitelist = DomainWhitelist(config.federation_domain_whitelist)
    client = FederationClient(
        server_name=config.server_name,
        signing_key=signing_key,
        connections=connections,
        discovery=ServerDiscovery(connections.session, tls),
        tls=tls,
        backoff=backoff,
        domain_whitelist=whitelist,
        retries=RetrySettings(
            client_timeout_seconds=settings.client_timeout / 1000,
            max_short_retries=settings.max_short_retries,
            max_short_retry_delay_seconds=settings.max_short_retry_delay / 1000,
            max_long_retries=settings.max_long_retries,
            max_long_retry_delay_seconds=settings.max_long_retry_delay / 1000,
        ),
    )
    sender = None
    if config.send_federation:
        sender = FederationSender(
            server_name=config.server_name,
            database=database,
            store=store,
            transport=client,
            backoff=backoff,
            may_send_to=whitelist.allows,
        )
    return Federation(client, DestinationAdminService(store, backoff), whitelist, sender)


@dataclass(frozen=True)
class InboundFederation:
    """What serves other servers' requests (api/federation/) beyond keys and queries."""

    server_acl: ServerAclChecker
    make_join: MakeJoinService
    send_join: SendJoinService
    transactions: TransactionService
    # the format, signature and hash checks of the PDUs other servers send
    verifier: EventVerifier
    make_membership: MakeMembershipService
    history: FederationHistory
    # the handlers of each EDU type, registered by the parts that own them
    edus: EduDispatcher


def build_inbound_federation(
    config: HomeserverConfig,
    database: Database,
    rooms: Rooms,
    keyring: Keyring,
    client: FederationClient,
    federation_sender: FederationSender | None,
) -> InboundFederation:
    acl = ServerAclChecker(RoomAccess(rooms.sender, rooms.sender.loader))
    relay = None if federation_sender is None else federation_sender.relay
    verifier = EventVerifier(keyring)
    edus = EduDispatcher()
    transactions = TransactionService(
        database, rooms.sender, verifier, acl, client, config.server_name, edus
    )
    # /messages pulls older history through the same checks as pushed events
    rooms.reading.backfill = transactions.backfill
    return InboundFederation(
        server_acl=acl,
        send_join=SendJoinService(database, rooms.sender, verifier, acl, config.server_name, relay),
        transactions=transactions,
        verifier=verifier,
        make_join=MakeJoinService(
            database, rooms.sender, rooms.membership, acl, config.server_name
        ),
        make_membership=MakeMembershipService(
            rooms.sender, verifier, acl, config.server_name, relay
        ),
        history=FederationHistory(
            database,
            rooms.sender.loader,
            acl,
            ServerVisibility(database, rooms.sender.loader, rooms.redactions),
            config.server_name,
        ),
        edus=edus,
    )


def connect_federated_edus(
    config: HomeserverConfig,
    database: Database,
    rooms: Rooms,
    ephemeral: Ephemeral,
    sender: FederationSender | None,
    inbound: InboundFederation,
) -> None:
    """Typing, receipts and presence with other servers: theirs through the EDU
    dispatcher (held to the rooms' server ACLs), ours out through the transaction queue
    (none with send_federation off)."""
    membership = rooms.membership

    async def is_joined(room_id: str, user_id: str) -> bool:
        return room_id in await membership.joined_rooms(user_id)

    outbox = EduOutbox(sender, config.server_name) if sender is not None else None
    joined_servers = joined_servers_lookup(database, sender)
    allows = inbound.server_acl.allows
    typing = TypingFederation(
        ephemeral.typing, is_joined, joined_servers, allows, config.server_name, outbox
    )
    inbound.edus.register(TYPING_EDU, typing.on_edu)
    receipts = ReceiptFederation(
        ephemeral.receipts, is_joined, joined_servers, allows, config.server_name, outbox
    )
    inbound.edus.register(RECEIPT_EDU, receipts.on_edu)
    presence = PresenceFederation(ephemeral.presence, membership.joined_rooms, database, outbox)
    inbound.edus.register(PRESENCE_EDU, presence.on_edu)


def build_url_previews(
    config: HomeserverConfig, database: Database, images: PreviewImageStore | None
) -> UrlPreviewService | None:
    """None unless url_preview_enabled: then the preview endpoints are not served."""
    if not config.url_preview_enabled:
        return None
    patterns = UrlPatterns(config.url_preview_url_blacklist)
    fetcher = PreviewFetcher(
        AddressPolicy.from_config(
            config.url_preview_ip_range_blacklist or [], config.url_preview_ip_range_whitelist
        ),
        max_size=config.max_spider_size,
        accept_language=config.url_preview_accept_language,
        url_refused=patterns.refuses,
    )
    return UrlPreviewService(
        UrlPreviewStore(database),
        fetcher,
        images,
        patterns,
        cache_duration_ms=config.url_preview_cache_duration,
    )


@dataclass(frozen=True)
class Media:
    """The media repository and its rate limits."""

    service: MediaService
    create_ratelimiter: Ratelimiter
    # bytes fetched from other servers per client IP (remote_media_download_*)
    remote_download_ratelimiter: Ratelimiter
    # media_retention's periodic deletions
    retention: MediaRetention


def build_media(
    config: HomeserverConfig, database: Database, accounts: Accounts, fetcher: FileFetcher
) -> Media:
    async def user_exists(user_id: str) -> bool:
        return await accounts.users.get_user(user_id) is not None

    files = MediaFiles(config.media_store_path)
    files.prepare()
    store = MediaStore(database)
    remote = remote_media_cache(
        config, RemoteMediaCacheStore(database), files, fetcher, store.sha256_in_use
    )
    service = MediaService(config, store, files, user_exists, remote)
    return Media(
        service=service,
        retention=MediaRetention(config.media_retention, service),
        create_ratelimiter=Ratelimiter(config.rc_media_create, name="rc_media_create"),
        remote_download_ratelimiter=Ratelimiter(
            RatelimitSettings(
                per_second=config.remote_media_download_per_second,
                burst_count=config.remote_media_download_burst_count,
            ),
            name="remote_media_download",
        ),
    )


@dataclass(frozen=True)
class AppServiceTransactions:
    """What the homeserver pushes to application services: which events and rooms each
    is interested in, and the loops that put them into transactions."""

    interest: AppServiceInterest
    sender: AppServiceTransactionSender
    # whether any service is registered: if not, nothing needs telling of new events
    active: bool


def build_appservice_transactions(
    database: Database,
    appservices: AppServices,
    accounts: Accounts,
    rooms: Rooms,
    ephemeral: Ephemeral,
    e2ee: E2ee,
    notifier: Notifier,
    server_name: str,
) -> AppServiceTransactions:
    streams = AppServiceStreams(database)
    interest = AppServiceInterest(streams, rooms.sender.loader, server_name)
    typing = ephemeral.typing

    async def devices_of(user_id: str) -> list[str]:
        return [device.device_id for device in await accounts.devices.list_devices(user_id)]

    collector = EphemeralCollector(
        streams,
        interest,
        StreamSources(
            receipts_position=ephemeral.receipts.current_position,
            presence_position=ephemeral.presence.current_position,
            to_device_position=ephemeral.to_device.current_position,
            device_lists_position=e2ee.device_lists.current_position,
            typing_position=typing.current_position,
            typing_changed_since=typing.changed_since,
            devices_of=devices_of,
            key_counts=e2ee.device_lists.key_counts,
        ),
    )
    positions = rooms.sender.positions
    sender = AppServiceTransactionSender(
        appservices.registry.all,
        client=appservices.client,
        store=AppServiceStore(database),
        streams=streams,
        interest=interest,
        loader=rooms.sender.loader,
        serializer=rooms.serializer,
        events_position=lambda: positions.current,
        ephemeral=collector,
        stripped_state=StateLoader(database, rooms.sender.loader).stripped_state,
    )
    # typing, receipts, presence, to-device and device lists wake the services sent them;
    # a server without services pays nothing on its hot paths
    if appservices.registry.all:
        notifier.listeners.append(sender.notify_stream)
    return AppServiceTransactions(
        interest=interest, sender=sender, active=bool(appservices.registry.all)
    )


def connect_persist_listeners(
    config: HomeserverConfig,
    database: Database,
    rooms: Rooms,
    ephemeral: Ephemeral,
    push: Push,
    notifier: Notifier,
    federation_sender: FederationSender | None,
    e2ee: E2ee,
    appservice_transactions: AppServiceTransactions,
) -> None:
    """Who hears of each committed batch of room events, in order (PersistListeners)."""
    appservices = appservice_transactions if appservice_transactions.active else None
    rooms.sender.listeners.connect(
        readable=[
            # before any reader runs: which rooms a service has members in
            *([appservices.interest.on_persisted] if appservices is not None else []),
            # forgets cached redaction lookups before a woken reader serves the redacted event
            rooms.redactions.on_persisted,
            RoomEventWakeups(database, notifier, rooms.sender.positions).on_persisted,
        ],
        persisted=[
            *(
                [PersistedEventCounter(config.server_name).on_persisted]
                if config.enable_metrics
                else []
            ),
            rooms.search.on_persisted,
            rooms.user_directory.on_persisted,
            # sending counts as activity for presence; a member who leaves stops typing
            ephemeral.presence.on_persisted,
            ephemeral.typing.on_persisted,
            *([push.actions.on_persisted] if config.push.enabled else []),
            # our events go out to the other servers in their rooms
            *([federation_sender.notify_new_events] if federation_sender is not None else []),
            # other servers' users' device lists are kept only while we share a room
            e2ee.remote_device_lists.on_persisted,
            # wakes the application services' loops, which never hold up the send
            *([appservices.sender.notify_new_events] if appservices is not None else []),
            *(
                [
                    RoomForgetter(
                        database, config.server_name, rooms.membership.forget_listeners
                    ).on_persisted
                ]
                if config.forget_rooms_on_leave
                else []
            ),
        ],
    )


def build_sync(
    config: HomeserverConfig,
    database: Database,
    rooms: Rooms,
    user_data: UserData,
    ephemeral: Ephemeral,
    push: Push,
    e2ee: E2ee,
    notifier: Notifier,
) -> SyncService:
    loader = rooms.sender.loader
    user_data.account_data.on_change.append(
        lambda user_id, position: notifier.notify("account_data", position, users=(user_id,))
    )
    return SyncService(
        database,
        rooms.sender,
        user_data.filters,
        notifier,
        RoomsBuilder(
            database,
            loader,
            TimelineLoader(database, loader, rooms.visibility),
            StateLoader(database, loader),
            rooms.serializer,
            rooms.relations.bundled_aggregations,
            unread=push.actions,
        ),
        AccountDataReader(user_data.account_data, push.rules),
        # the streams besides rooms and account data, in the order they appear in a response
        [
            RoomEphemeralSection(ephemeral.typing),
            RoomEphemeralSection(ephemeral.receipts),
            ToDeviceSection(ephemeral.to_device),
            DeviceListsSection(e2ee.device_lists),
            PresenceSection(ephemeral.presence),
        ],
        max_timeline_limit=config.filter_timeline_limit,
        response_cache_ms=config.caches.sync_response_cache_duration,
    )


def build_sliding_sync(
    database: Database,
    rooms: Rooms,
    user_data: UserData,
    ephemeral: Ephemeral,
    push: Push,
    e2ee: E2ee,
    notifier: Notifier,
    global_account_data: GlobalAccountDataCache,
) -> SlidingSyncService:
    """Simplified sliding sync (MSC4186), from /sync's sources. Each room's bump stamp
    is kept as events persist, before any start-up work sends one."""
    rooms.sender.prepare_persist.append(prepare_bump_stamps)
    loader = rooms.sender.loader
    account_data = AccountDataStore(database)
    room_list = RoomListCache(
        database,
        rooms.sender.room_changes.changed_since,
        rooms.sender.member_changes.changed_since,
    )
    rooms.membership.forget_listeners.append(
        lambda user_id, _room_id: room_list.invalidate_user(user_id)
    )
    rooms.sender.purge_listeners.append(lambda _room_id: room_list.invalidate_all())

    async def current_token() -> SyncToken:
        # the room events' position first, as /sync reads it
        events = rooms.sender.positions.current
        return SyncToken(
            events=events,
            account_data=await user_data.account_data.current_stream_position(),
            receipts=ephemeral.receipts.current_position(),
            typing=ephemeral.typing.current_position(),
            presence=ephemeral.presence.current_position(),
            to_device=ephemeral.to_device.current_position(),
            device_lists=e2ee.device_lists.current_position(),
            push_rules=push.rules.current_position(),
        )

    return SlidingSyncService(
        database,
        rooms.sender,
        notifier,
        SlidingSyncRooms(
            database,
            loader,
            TimelineLoader(database, loader, rooms.visibility),
            StateLoader(database, loader),
            rooms.serializer,
            unread=push.actions,
            bundler=rooms.relations.bundled_aggregations,
        ),
        RoomFactsLoader(database, loader, account_data, global_account_data),
        room_list,
        current_token,
        # the same sources as /sync's sections, wrapped in the extensions' shapes
        extensions=SlidingSyncExtensions(
            database,
            to_device=ephemeral.to_device,
            device_lists=e2ee.device_lists,
            account_data=AccountDataReader(user_data.account_data, push.rules),
            receipts=ephemeral.receipts,
            typing=ephemeral.typing,
        ),
    )


@dataclass(frozen=True)
class Moderation:
    """OpenID tokens, mutual rooms, user reports and account suspension."""

    openid: OpenIdService
    mutual_rooms: MutualRoomsService
    user_reports: UserReportService
    suspensions: Suspensions


def build_moderation(
    config: HomeserverConfig,
    database: Database,
    accounts: Accounts,
    rooms: Rooms,
    user_data: UserData,
) -> Moderation:
    suspensions = Suspensions(accounts.users, rooms.sender.loader, config.server_name)
    # the one place a suspended account's limits are enforced: every event a local user
    # sends, and every profile change
    rooms.sender.before_send.append(suspensions.check_send)
    user_data.profiles.before_change.append(suspensions.check_profile_change)
    return Moderation(
        openid=OpenIdService(OpenIdTokenStore(database)),
        mutual_rooms=MutualRoomsService(database),
        user_reports=UserReportService(ReportStore(database), accounts.users, config.server_name),
        suspensions=suspensions,
    )


@dataclass(frozen=True)
class SignIn:
    """The web pages of signing in: the templates they share and the fallback pages of
    user-interactive auth stages (each stage's part registers its own)."""

    templates: Templates
    fallback_pages: FallbackPages
    # each None when its config leaves it off
    captcha: RecaptchaVerifier | None
    consent: ConsentService | None
    jwt: JwtLogin | None

    def consent_routes(self) -> list[web.RouteDef]:
        if self.consent is None:
            return []
        # the policy's templates are the admin's own, by language and version
        templates = Templates(self.consent.config.template_dir)
        return ConsentEndpoints(self.consent, templates).routes()

    def on_user_syncing(self) -> Callable[[str, bool], Awaitable[None]] | None:
        """The consent server notice's hook on /sync, when there is a notice to send."""
        if self.consent is None or self.consent.config.server_notice_content is None:
            return None
        return self.consent.on_user_syncing

    async def close(self) -> None:
        if self.captcha is not None:
            await self.captcha.close()


def build_threepids(
    config: HomeserverConfig,
    database: Database,
    accounts: Accounts,
    templates: Templates,
    push: Push,
) -> ThreepidService:
    """Email addresses: the m.login.email.identity stage, the address a registration
    proved bound to the new account (with an email pusher there under
    `email.notif_for_new_users`), and a deactivated account's addresses removed."""
    email = config.email
    mailer = Mailer(email, config.server_name) if email is not None else None
    notify_new_users = email is not None and email.enable_notifs and email.notif_for_new_users
    threepids = ThreepidService(
        config,
        ThreepidStore(database),
        mailer,
        templates,
        on_email_registered=(
            push.pushers.add_email_pusher_for_new_user if notify_new_users else None
        ),
    )
    accounts.uia.register_stage(EMAIL_IDENTITY, EmailIdentityStage(threepids))
    accounts.accounts.on_registered.append(threepids.bind_registered)
    accounts.accounts.on_deactivated.append(threepids.on_deactivated)
    return threepids


def build_sign_in(
    config: HomeserverConfig, accounts: Accounts, rooms: Rooms, admin: Admin
) -> SignIn:
    # Synapse looks in custom_template_directory, then the older email.template_dir
    templates = Templates(
        config.templates.custom_template_directory,
        config.email.template_dir if config.email is not None else None,
    )
    fallback_pages = FallbackPages()
    uia = accounts.uia
    captcha = None
    if config.enable_registration_captcha:
        assert config.recaptcha_private_key and config.recaptcha_public_key, "validation.py"
        captcha = RecaptchaVerifier(config.recaptcha_private_key, config.recaptcha_siteverify_api)
        uia.register_stage(RECAPTCHA, RecaptchaStage(captcha, config.recaptcha_public_key))
        fallback_pages.register(
            RECAPTCHA, RecaptchaPage(uia, templates, config.recaptcha_public_key)
        )
    consent = None
    if config.user_consent is not None:
        assert config.form_secret and config.public_baseurl, "validation.py"
        consent = ConsentService(
            config.user_consent,
            config.form_secret,
            config.public_baseurl,
            config.server_name,
            accounts.users,
            admin.server_notices,
        )
        uia.register_stage(TERMS, consent.stage())
        fallback_pages.register(TERMS, TermsPage(uia, templates, consent))
        accounts.accounts.on_registered.append(consent.registered_through)
        if config.user_consent.block_events_error is not None:
            rooms.sender.before_send.append(consent.check_send)
    jwt = None
    if config.jwt_config.enabled:
        jwt = JwtLogin(config.jwt_config, accounts.accounts, accounts.users, config.server_name)
    return SignIn(
        templates=templates,
        fallback_pages=fallback_pages,
        captcha=captcha,
        consent=consent,
        jwt=jwt,
    )


@dataclass(frozen=True)
class SingleSignOn:
    """Signing in through OpenID Connect providers: the service and its browser pages."""

    service: SsoService
    endpoints: SsoEndpoints


def build_sso(
    config: HomeserverConfig,
    database: Database,
    accounts: Accounts,
    user_data: UserData,
    sign_in: SignIn,
) -> SingleSignOn | None:
    """None without `oidc_providers`; else the service, the m.login.sso stage of
    user-interactive auth and its fallback page, and back-channel logout for the providers
    that have it."""
    if not config.oidc_providers:
        return None
    # imported only here: the OAuth and JOSE libraries they load (with cryptography) cost
    # every server some 9 MiB, and only one with providers needs them
    from ranvier.api.client.sso import SsoEndpoints, SsoFallbackPage
    from ranvier.services.sso.backchannel import BackchannelLogout
    from ranvier.services.sso.oidc import OidcProvider
    from ranvier.services.sso.service import CALLBACK_PATH, SSO, SsoService, SsoStage

    callback_url = config.effective_public_baseurl + CALLBACK_PATH.lstrip("/")
    providers = [OidcProvider(provider, callback_url) for provider in config.oidc_providers]
    service = SsoService(
        config,
        providers,
        SsoSessionStore(database),
        ExternalIdStore(database),
        accounts.users,
        accounts.accounts,
        accounts.login,
        user_data.profiles,
        accounts.uia,
        sign_in.consent,
    )
    accounts.uia.register_stage(SSO, SsoStage())
    backchannel = None
    if any(provider.backchannel_logout_enabled for provider in config.oidc_providers):
        backchannel = BackchannelLogout(
            providers,
            ProviderSessionStore(database),
            ExternalIdStore(database),
            accounts.devices,
        )
        accounts.login.on_provider_session.append(backchannel.record)
        accounts.devices.on_devices_deleted.append(backchannel.on_devices_deleted)
    endpoints = SsoEndpoints(
        service,
        sign_in.templates,
        secure_cookies=config.effective_public_baseurl.startswith("https:"),
        backchannel=backchannel,
    )
    sign_in.fallback_pages.register(SSO, SsoFallbackPage(endpoints, service))
    return SingleSignOn(service=service, endpoints=endpoints)


@dataclass
class Homeserver:
    config: HomeserverConfig
    database: Database
    background_updater: BackgroundUpdater
    accounts: Accounts
    user_data: UserData
    rooms: Rooms
    admin: Admin
    room_admin: RoomAdmin
    ratelimiters: Ratelimiters
    notifier: Notifier
    ephemeral: Ephemeral
    push: Push
    e2ee: E2ee
    sync: SyncService
    sliding_sync: SlidingSyncService
    key_backup: KeyBackupService
    federation: Federation
    inbound_federation: InboundFederation
    dehydrated_devices: DehydratedDeviceService
    media: Media
    moderation: Moderation
    keyring: Keyring
    appservices: AppServices
    appservice_transactions: AppServiceTransactions
    sign_in: SignIn
    identity: Identity
    # email addresses: validation by mailed links, and those bound to accounts
    threepids: ThreepidService
    url_previews: UrlPreviewService | None = None
    # single sign-on, when OpenID Connect providers are configured
    sso: SingleSignOn | None = None
    # records every request on every listener; None without enable_metrics
    request_recorder: RequestRecorder | None = None
    # the certificate of the listeners with `tls: true`, if there are any
    tls: ServerCertificate | None = None
    runners: list[web.AppRunner] = field(default_factory=list)

    def __post_init__(self) -> None:
        # the rooms' indexes are filled by background updates that their services run
        self.rooms.search.register_background_updates(self.background_updater)
        self.rooms.user_directory.register_background_updates(self.background_updater)

    def build_app(self, listener: Listener) -> web.Application:
        recorder = [self.request_recorder.middleware] if self.request_recorder else []
        if listener.type == "metrics":
            # a port of its own for the scraper, as Synapse's: the metrics and nothing else
            metrics_app = web.Application(
                middlewares=[request_id_middleware, matrix_error_middleware]
            )
            metrics_app.add_routes(metrics_routes(listener_of_its_own=True))
            return metrics_app
        app = web.Application(
            middlewares=[
                # outermost, so every answer is counted, errors and unknown paths included
                *recorder,
                request_id_middleware,
                cors_middleware,
                matrix_error_middleware,
                request_text_middleware,
            ],
            client_max_size=self.config.max_request_body_size,
        )
        app[X_FORWARDED] = listener.x_forwarded
        resources = {name for resource in listener.resources for name in resource.names}
        route_defs: list[web.RouteDef] = list(
            root.RootEndpoints(self.config.web_client_location, self.database.reachable).routes()
        )
        if "client" in resources:
            route_defs += versions.routes()
            route_defs += wellknown.WellKnownEndpoints(self.config).routes()
            # Synapse serves its admin API on the client resource; admin tools expect that
            route_defs += server_version.routes()
            route_defs += admin_background_updates.BackgroundUpdateEndpoints(
                self.background_updater,
                self.accounts.auth,
                jobs={"regenerate_directory": POPULATE_USER_DIRECTORY},
            ).routes()
            route_defs += self._account_routes()
            route_defs += AuthFallbackEndpoints(
                self.accounts.uia, self.sign_in.fallback_pages
            ).routes()
            if self.sso is not None:
                route_defs += self.sso.endpoints.routes()
            route_defs += self._admin_routes()
            route_defs += self._user_data_routes()
            route_defs += self._room_routes()
            route_defs += self._ephemeral_routes()
            route_defs += self._push_routes()
            route_defs += keys_api.KeyEndpoints(
                self.accounts.auth,
                self.e2ee.keys,
                self.e2ee.device_lists,
                self.accounts.accounts,
                self.accounts.uia,
            ).routes()
            route_defs += room_keys_api.RoomKeyEndpoints(
                self.accounts.auth, self.key_backup
            ).routes()
            route_defs += dehydrated_devices_api.DehydratedDeviceEndpoints(
                self.accounts.auth, self.dehydrated_devices
            ).routes()
            route_defs += sync_api.SyncEndpoints(
                self.accounts.auth, self.sync, self.sign_in.on_user_syncing()
            ).routes()
            route_defs += sliding_sync_api.SlidingSyncEndpoints(
                self.accounts.auth, self.sliding_sync, self.config.filter_timeline_limit
            ).routes()
            route_defs += appservice_ping_api.AppServicePingEndpoints(
                self.accounts.auth,
                AppServicePing(
                    self.appservices.registry,
                    self.appservices.client,
                    on_reachable=self.appservice_transactions.sender.service_reachable,
                ),
            ).routes()
            route_defs += legacy_api.LegacyEndpoints(
                self.accounts.auth,
                LegacySyncService(
                    self.database,
                    self.sync,
                    self.rooms.reading,
                    self.rooms.reading.loader,
                    self.rooms.public_rooms,
                    presence=self.ephemeral.presence,
                    notifier=self.notifier,
                    receipts=self.ephemeral.receipts,
                    typing=self.ephemeral.typing,
                ),
                self.rooms.sending,
                self.ratelimiters,
            ).routes()
            route_defs += admin_media_api.MediaAdminEndpoints(
                self.accounts.auth, self.media.service
            ).routes()
            route_defs += self._moderation_routes()
        if "client" in resources or "media" in resources:
            route_defs += media_api.MediaEndpoints(
                self.accounts.auth,
                self.media.service,
                self.media.create_ratelimiter,
                self.media.remote_download_ratelimiter,
            ).routes()
            if self.url_previews is not None:
                route_defs += preview_api.PreviewEndpoints(
                    self.accounts.auth, self.url_previews
                ).routes()
        if "federation" in resources:
            route_defs += federation_version.routes()
            route_defs += self._federation_routes()
            if "client" not in resources:
                route_defs += wellknown.WellKnownEndpoints(self.config).routes()
        if "consent" in resources:
            route_defs += self.sign_in.consent_routes()
        if "federation" in resources or "openid" in resources:
            # as Synapse: the federation resource implies openid
            route_defs += federation_openid.OpenIdUserInfoEndpoints(self.moderation.openid).routes()
        if "federation" in resources or "keys" in resources:
            # as Synapse: the federation resource implies keys
            route_defs += federation_keys.KeyEndpoints(self.keyring).routes()
        if "metrics" in resources:
            route_defs += metrics_routes(listener_of_its_own=False)
        # the r0 and unstable twins of the v3 routes, added in one place
        app.add_routes(with_legacy_prefixes(route_defs))
        return app

    def _federation_routes(self) -> list[web.RouteDef]:
        auth = FederationAuthenticator(
            self.config.server_name,
            self.keyring,
            self.federation.domain_whitelist,
            self.federation.client.backoff,
        )
        return [
            # called by identity servers, which sign nothing
            *federation_third_party_invites.OnBindEndpoints(
                self.identity.third_party_invites
            ).routes(),
            *federation_query.FederationQueryEndpoints(
                auth, self.user_data.profiles, self.rooms.aliases
            ).routes(),
            *federation_make_join.MakeJoinEndpoints(
                auth, self.inbound_federation.make_join
            ).routes(),
            *federation_send_join.SendJoinEndpoints(
                auth, self.inbound_federation.send_join
            ).routes(),
            *federation_send.TransactionEndpoints(
                auth, self.inbound_federation.transactions
            ).routes(),
            *federation_leave.LeaveEndpoints(
                auth, self.inbound_federation.make_membership
            ).routes(),
            *federation_knock.KnockEndpoints(
                auth, self.inbound_federation.make_membership
            ).routes(),
            *federation_invite.InviteEndpoints(auth, self.rooms.invites).routes(),
            *federation_events.FederationEventEndpoints(
                auth, self.inbound_federation.history
            ).routes(),
            *federation_user_keys.UserKeyEndpoints(auth, self.e2ee.federation_keys).routes(),
            *federation_media.FederationMediaEndpoints(auth, self.media.service).routes(),
            *federation_public_rooms.FederationPublicRoomsEndpoints(
                auth, self.rooms.public_rooms
            ).routes(),
            *federation_hierarchy.FederationHierarchyEndpoints(auth, self.rooms.spaces).routes(),
        ]

    def _moderation_routes(self) -> list[web.RouteDef]:
        auth, moderation, config = self.accounts.auth, self.moderation, self.config
        return [
            *openid_api.OpenIdEndpoints(auth, moderation.openid, config.server_name).routes(),
            *mutual_rooms_api.MutualRoomsEndpoints(auth, moderation.mutual_rooms).routes(),
            *user_reports_api.UserReportEndpoints(auth, moderation.user_reports).routes(),
            *admin_suspension_api.AccountModerationEndpoints(auth, moderation.suspensions).routes(),
            *voip_api.VoipEndpoints(auth, config).routes(),
            *thirdparty_api.ThirdPartyEndpoints(
                auth, ThirdPartyLookup(self.appservices.registry, self.appservices.client)
            ).routes(),
            *login_token_api.LoginTokenEndpoints(
                auth,
                self.accounts.login,
                self.accounts.accounts,
                self.accounts.uia,
                config.login_via_existing_session,
            ).routes(),
        ]

    def _account_routes(self) -> list[web.RouteDef]:
        a = self.accounts
        server_name = self.config.server_name
        return [
            *register.RegisterEndpoints(
                a.auth,
                a.accounts,
                a.uia,
                server_name,
                self.ratelimiters.registration,
                a.appservice_users,
            ).routes(),
            *login.LoginEndpoints(
                a.auth,
                a.login,
                server_name,
                self.ratelimiters,
                a.appservice_users,
                jwt=self.sign_in.jwt,
            ).routes(),
            *account.AccountEndpoints(
                a.auth, a.accounts, a.uia, self.threepids, identity=self.identity.bindings
            ).routes(),
            *threepids_api.ThreepidEndpoints(
                a.auth,
                self.threepids,
                a.accounts,
                a.uia,
                self.ratelimiters.threepid_validation,
                identity=self.identity.bindings,
                pushers=self.push.pushers,
            ).routes(),
            *identity_api.IdentityEndpoints(a.auth, self.identity.bindings).routes(),
            *devices.DeviceEndpoints(a.auth, a.devices, a.accounts, a.uia).routes(),
        ]

    def _admin_routes(self) -> list[web.RouteDef]:
        auth, admin = self.accounts.auth, self.admin
        return [
            *admin_registration_tokens.RegistrationTokenEndpoints(
                auth, admin.registration_tokens
            ).routes(),
            *registration_token_validity.RegistrationTokenValidityEndpoints(
                admin.registration_tokens,
                self.ratelimiters.registration_token_validity,
                self.config.enable_registration,
            ).routes(),
            *admin_users_api.AdminUserEndpoints(auth, admin.users).routes(),
            *admin_sso_api.ExternalIdEndpoints(
                auth, ExternalIds(ExternalIdStore(self.database))
            ).routes(),
            *admin_user_activity_api.UserActivityEndpoints(auth, admin.user_activity).routes(),
            *admin_server_notices_api.ServerNoticeEndpoints(auth, admin.server_notices).routes(),
            *admin_room_membership_api.RoomMembershipAdminEndpoints(
                auth, admin.room_membership
            ).routes(),
            *admin_shadow_ban_api.ShadowBanEndpoints(auth, admin.shadow_bans).routes(),
            *admin_statistics_api.StatisticsEndpoints(auth, admin.statistics).routes(),
            *admin_username_available_api.UsernameAvailableEndpoints(
                auth, self.accounts.accounts
            ).routes(),
            *admin_ratelimit_overrides_api.RatelimitOverrideEndpoints(
                auth, admin.ratelimit_overrides
            ).routes(),
            *admin_room_extremities_api.ForwardExtremityEndpoints(
                auth, admin.room_extremities
            ).routes(),
            *admin_user_redaction_api.UserRedactionEndpoints(auth, admin.user_redactions).routes(),
            *admin_room_history_api.RoomHistoryAdminEndpoints(auth, admin.room_history).routes(),
            *admin_federation_api.DestinationEndpoints(auth, self.federation.destinations).routes(),
        ]

    def _user_data_routes(self) -> list[web.RouteDef]:
        auth, data = self.accounts.auth, self.user_data
        return [
            *profile_api.ProfileEndpoints(auth, data.profiles).routes(),
            *account_data_api.AccountDataEndpoints(auth, data.account_data).routes(),
            *filter_api.FilterEndpoints(auth, data.filters).routes(),
            *capabilities_api.CapabilitiesEndpoints(auth, self.config).routes(),
        ]

    def _room_routes(self) -> list[web.RouteDef]:
        auth, rooms = self.accounts.auth, self.rooms
        return [
            *rooms_api.RoomEndpoints(
                auth,
                rooms.creation,
                rooms.sending,
                self.identity.third_party_invites,
                self.ratelimiters,
                self.ratelimiters.third_party_invite,
            ).routes(),
            *admin_rooms_api.RoomAdminEndpoints(
                auth, self.room_admin.rooms, self.room_admin.deletion, self.config.server_name
            ).routes(),
            *purge_history_api.PurgeHistoryEndpoints(auth, self.room_admin.history_purges).routes(),
            *membership_api.MembershipEndpoints(
                auth,
                rooms.membership,
                self.identity.third_party_invites,
                self.ratelimiters.third_party_invite,
            ).routes(),
            *room_upgrades_api.RoomUpgradeEndpoints(auth, rooms.upgrades).routes(),
            *directory_api.AliasEndpoints(auth, rooms.aliases).routes(),
            *relations_api.RelationEndpoints(auth, rooms.relations).routes(),
            *room_reading_api.RoomReadingEndpoints(
                auth, rooms.reading, rooms.redacting, rooms.reports
            ).routes(),
            *admin_event_reports_api.EventReportEndpoints(auth, rooms.reports).routes(),
            *search_api.SearchEndpoints(auth, rooms.search).routes(),
            *user_directory_api.UserDirectoryEndpoints(auth, rooms.user_directory).routes(),
            *spaces_api.SpaceEndpoints(auth, rooms.spaces).routes(),
            *directory_api.RoomDirectoryEndpoints(
                auth,
                rooms.public_rooms,
                rooms.appservice_room_list,
                allow_public_rooms_without_auth=self.config.allow_public_rooms_without_auth,
            ).routes(),
        ]

    def _ephemeral_routes(self) -> list[web.RouteDef]:
        auth, ephemeral = self.accounts.auth, self.ephemeral
        return [
            *typing_api.TypingEndpoints(auth, ephemeral.typing).routes(),
            *receipts_api.ReceiptEndpoints(auth, ephemeral.receipts).routes(),
            *presence_api.PresenceEndpoints(auth, ephemeral.presence).routes(),
            *to_device_api.ToDeviceEndpoints(auth, ephemeral.to_device).routes(),
        ]

    def _push_routes(self) -> list[web.RouteDef]:
        auth, push = self.accounts.auth, self.push
        return [
            *push_api.PushRuleEndpoints(auth, push.rules).routes(),
            *push_api.NotificationEndpoints(auth, push.actions).routes(),
            *push_api.PusherEndpoints(auth, push.pushers).routes(),
            *admin_pushers_api.PusherAdminEndpoints(auth, push.pushers).routes(),
            *(
                []
                if push.unsubscribe is None
                else unsubscribe_api.UnsubscribeEndpoints(
                    push.unsubscribe, self.sign_in.templates
                ).routes()
            ),
        ]

    async def start(self) -> list[str]:
        """Bind every HTTP listener; returns their URLs."""
        bound: list[str] = []
        for listener in self.config.listeners:
            if listener.type not in ("http", "metrics"):
                logger.warning("Listener type %r is not served yet; skipping it", listener.type)
                continue
            runner = web.AppRunner(
                self.build_app(listener),
                # the request-ID middleware writes the access lines
                access_log=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
                handle_signals=False,
            )
            await runner.setup()
            self.runners.append(runner)
            ssl_context = None
            if listener.tls:
                assert self.tls is not None, "create_homeserver loads it for TLS listeners"
                ssl_context = self.tls.context
            for address in listener.bind_addresses:
                site = web.TCPSite(runner, address, listener.port, ssl_context=ssl_context)
                await site.start()
                bound.append(site.name)
                logger.info("Listening on %s", site.name)
        self.ephemeral.presence.start()
        await self.push.pushers.start()
        if self.federation.sender is not None:
            self.federation.sender.start()
        self.appservice_transactions.sender.start()
        self.room_admin.retention_purges.start()
        self.room_admin.redaction_pruner.start()
        self.room_admin.forgotten_rooms.start()
        self.media.retention.start()
        return bound

    async def stop(self) -> None:
        # no new connections, on any listener, from here on
        for runner in self.runners:
            for site in list(runner.sites):
                await site.stop()
        # requests that only wait answer now with what they have: long-polls with an empty
        # response and a token to continue from, downloads of unfinished uploads with 504
        self.notifier.close()
        self.media.service.stop_waiting()
        # the rest (sends, uploads) get SHUTDOWN_TIMEOUT_SECONDS to finish
        await asyncio.gather(*(runner.cleanup() for runner in self.runners))
        self.runners.clear()
        # a send whose request was cut off still persists before the database closes
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_SECONDS):
                await self.rooms.sender.wait_idle()
        except TimeoutError:
            logger.warning("Stopped before every queued event was persisted")
        await self.background_updater.stop()
        await self.ephemeral.presence.stop()
        await self.push.pushers.stop()
        # what was not delivered is caught up from destination_rooms at the next start
        if self.federation.sender is not None:
            await self.federation.sender.stop()
        await self.federation.client.close()
        # a transaction in flight is sent again, with the same ID, at the next start
        await self.appservice_transactions.sender.stop()
        await self.appservices.client.close()
        await self.sign_in.close()
        await self.identity.client.close()
        if self.sso is not None:
            await self.sso.service.close()
        if self.url_previews is not None:
            await self.url_previews.close()
        self.ephemeral.typing.stop()
        # an interrupted deletion is marked failed at the next start
        await self.room_admin.deletion.stop()
        await self.room_admin.retention_purges.stop()
        await self.room_admin.redaction_pruner.stop()
        await self.room_admin.forgotten_rooms.stop()
        await self.room_admin.history_purges.stop()
        await self.media.retention.stop()
        await self.admin.user_redactions.stop()
        await self.accounts.access_tokens.wait_idle()
        await self.database.close()


async def create_homeserver(config: HomeserverConfig) -> Homeserver:
    if config.enable_metrics:
        # before anything is built: caches are made metered or plain from here on
        metrics_registry.enable(config.server_name)
        federation_metrics.label_domains(config.federation_metrics_domains or ())
    signing_key = load_signing_key(config.signing_key_path)
    database = await prepare_database(config)
    updater = BackgroundUpdater(database)
    appservices = build_appservices(config)
    accounts = build_accounts(config, database, appservices.registry)
    # a service acts as its sender without registering it
    await accounts.appservice_users.ensure_senders()
    federation = build_federation(config, database, signing_key)
    # the client API's lookups of other servers' profiles and aliases ask those servers
    remote = RemoteQueries(federation.client)
    keyring = build_keyring(config, database, signing_key, federation.client)
    # m.direct and ignored users, read by every sync; dropped at each change of the user's
    global_account_data = GlobalAccountDataCache(AccountDataStore(database))
    rooms = await build_rooms(
        config,
        database,
        signing_key,
        remote.directory,
        federation.client,
        keyring,
        AppServiceQueries(appservices.registry, appservices.client, accounts.users),
        appservices.registry,
        global_account_data,
    )
    user_data = build_user_data(
        config, database, rooms.membership.shares_room, remote.profile, global_account_data
    )
    user_data.profiles.on_change(rooms.membership.on_profile_change)
    notifier = Notifier()
    ephemeral = await build_ephemeral(
        config, database, rooms, user_data, notifier, federation.sender
    )
    push = await build_push(
        config, database, accounts, rooms, user_data, ephemeral, notifier, signing_key
    )
    e2ee = await build_e2ee(config, database, accounts, rooms, notifier, federation)
    appservice_transactions = build_appservice_transactions(
        database, appservices, accounts, rooms, ephemeral, e2ee, notifier, config.server_name
    )
    # before the start-up work below that sends events (resuming a room deletion)
    connect_persist_listeners(
        config,
        database,
        rooms,
        ephemeral,
        push,
        notifier,
        federation.sender,
        e2ee,
        appservice_transactions,
    )
    # members keep their m.direct entries, tags and push rules in an upgraded room
    rooms.upgrades.on_upgraded.append(
        UpgradeUserStateTransfer(user_data.account_data, push.rules).on_upgraded
    )
    media = build_media(config, database, accounts, federation.client)
    inbound_federation = build_inbound_federation(
        config, database, rooms, keyring, federation.client, federation.sender
    )
    connect_federated_edus(
        config, database, rooms, ephemeral, federation.sender, inbound_federation
    )
    connect_e2ee_edus(config, e2ee, ephemeral, inbound_federation.edus)
    sliding_sync = build_sliding_sync(
        database, rooms, user_data, ephemeral, push, e2ee, notifier, global_account_data
    )
    accounts.devices.on_devices_deleted.append(sliding_sync.on_devices_deleted)
    admin = build_admin(config, database, accounts, user_data, rooms)
    sign_in = build_sign_in(config, accounts, rooms, admin)
    await admin.ratelimit_overrides.load()
    return Homeserver(
        config=config,
        database=database,
        background_updater=updater,
        accounts=accounts,
        user_data=user_data,
        rooms=rooms,
        admin=admin,
        room_admin=await build_room_admin(config, database, rooms),
        ratelimiters=Ratelimiters.from_config(
            config, message_overrides=admin.ratelimit_overrides.user_id_to_message_limit
        ),
        notifier=notifier,
        ephemeral=ephemeral,
        push=push,
        e2ee=e2ee,
        sync=build_sync(config, database, rooms, user_data, ephemeral, push, e2ee, notifier),
        sliding_sync=sliding_sync,
        key_backup=build_key_backup(database, accounts),
        federation=federation,
        inbound_federation=inbound_federation,
        dehydrated_devices=DehydratedDeviceService(
            DehydratedDeviceStore(database), accounts.devices, e2ee.keys, ephemeral.to_device
        ),
        media=media,
        moderation=build_moderation(config, database, accounts, rooms, user_data),
        keyring=keyring,
        appservices=appservices,
        appservice_transactions=appservice_transactions,
        sign_in=sign_in,
        threepids=build_threepids(config, database, accounts, sign_in.templates, push),
        identity=build_identity(config, database, signing_key, rooms),
        sso=build_sso(config, database, accounts, user_data, sign_in),
        url_previews=build_url_previews(config, database, MediaRepositoryImages(media.service)),
        tls=build_tls(config),
        request_recorder=connect_metrics(config, notifier, federation.sender, updater),
    )


def connect_metrics(
    config: HomeserverConfig,
    notifier: Notifier,
    federation_sender: FederationSender | None,
    updater: BackgroundUpdater,
) -> RequestRecorder | None:
    """What the metrics read when scraped (queues, long-polls, background updates) and
    the request recorder every listener runs; nothing without enable_metrics."""
    if not config.enable_metrics:
        return None
    notifier.listeners.append(count_notification)
    WaitingLongPolls(notifier.waiting_counts, lambda: notifier.woken_by_stream)
    if federation_sender is not None:
        PendingQueues(federation_sender.pending)
    BackgroundUpdateProgress(updater.status, updater.database_name)
    return RequestRecorder(RequestMetrics())


def build_tls(config: HomeserverConfig) -> ServerCertificate | None:
    """The TLS listeners' certificate; None without TLS listeners, where the files, though
    checked at start-up, are not served (as in Synapse)."""
    if not any(listener.tls for listener in config.listeners):
        return None
    # validation.py refuses TLS listeners without both paths
    assert config.tls_certificate_path is not None and config.tls_private_key_path is not None
    return ServerCertificate(config.tls_certificate_path, config.tls_private_key_path)


def build_keyring(
    config: HomeserverConfig,
    database: Database,
    signing_key: ServerSigningKey,
    client: FederationRequests | None,
) -> Keyring:
    """Our keys as published, and other servers' keys: cached in the database, fetched
    through `client` from them or from the trusted key servers."""
    own = OwnKeys(
        server_name=config.server_name,
        signing_key=signing_key,
        old_verify_keys={
            key_id: OldVerifyKey(decode_verify_key(old.key), old.expired_ts)
            for key_id, old in config.old_signing_keys.items()
        },
        refresh_interval_ms=config.key_refresh_interval,
    )
    trusted = [
        TrustedKeyServer(
            server.server_name,
            None
            if server.verify_keys is None
            else {key_id: decode_verify_key(key) for key_id, key in server.verify_keys.items()},
        )
        for server in config.trusted_key_servers
    ]
    return Keyring(own, ServerKeyStore(database), client, trusted)


async def register_user(config: HomeserverConfig, user: str, password: str, *, admin: bool) -> str:
    """`ranvier register-user`: straight into the database, so it works with the server
    running or not. `user` is a localpart or a full user ID on this server."""
    localpart = user
    if user.startswith("@"):
        localpart, _, server_name = user[1:].partition(":")
        if server_name != config.server_name:
            raise MatrixError(
                400, "M_INVALID_USERNAME", f"{user} is not a user ID on {config.server_name}"
            )
    database = await prepare_database(config)
    try:
        accounts = build_accounts(config, database)
        return await accounts.accounts.register_from_command_line(localpart, password, admin=admin)
    finally:
        await database.close()


# what SIGHUP does besides reopening log files: each returns what it did, for the log line
ReloadHook = Callable[[], str]


def reload_on_sighup(hooks: Sequence[ReloadHook]) -> None:
    """SIGHUP, as Synapse answers it: reopen log files (logrotate's postrotate step), then
    the hooks (TLS listeners' certificate among them), and keep serving."""
    done: list[str] = []
    failed = False
    for hook in (_reopen_log_files, *hooks):
        try:
            done.append(hook())
        except Exception as exc:  # a failed reload must not stop the server
            failed = True
            done.append(f"failed: {exc}")
    # a failed hook kept what it had (a bad certificate leaves the old one served)
    logger.log(
        logging.ERROR if failed else logging.INFO, "SIGHUP: %s; still serving", "; ".join(done)
    )


def _reopen_log_files() -> str:
    count = reopen_log_files()
    return f"reopened {count} log file{'' if count == 1 else 's'}"


async def serve(
    config: HomeserverConfig,
    on_ready: Callable[[list[str]], None] | None = None,
    reload_hooks: Sequence[ReloadHook] = (),
) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight requests and close the database.
    SIGHUP reloads (`reload_on_sighup`). While it runs the server holds its database, so
    `ranvier db downgrade` is refused."""
    if config.not_used_keys:
        # harmless Synapse options (docs/configuration.md): said once, then left alone
        logger.warning("Not used by Ranvier: %s", ", ".join(config.not_used_keys))
    warning = key_server_warning(config)
    if warning is not None:
        logger.warning("%s", warning)
    if config.email is not None and config.email.template_dir is not None:
        # as Synapse warns: it still works, searched after custom_template_directory
        logger.warning(
            "email.template_dir is deprecated: move its templates to "
            "templates.custom_template_directory"
        )
    log_registrations(config.appservices)
    homeserver = await create_homeserver(config)
    try:
        hold = await hold_for_server(homeserver.database)
    except BaseException:
        await homeserver.database.close()
        raise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    if homeserver.tls is not None:
        reload_hooks = (*reload_hooks, homeserver.tls.reload)
    loop.add_signal_handler(signal.SIGHUP, reload_on_sighup, reload_hooks)
    try:
        bound = await homeserver.start()
        homeserver.background_updater.start()
        logger.info("Ranvier %s serving %s", __version__, config.server_name)
        if on_ready is not None:
            on_ready(bound)
        await stopping.wait()
        logger.info("Shutting down: finishing requests in flight")
    finally:
        await homeserver.stop()
        await hold.release()
        logger.info("Stopped")


def run(
    config: HomeserverConfig,
    on_ready: Callable[[list[str]], None] | None = None,
    reload_hooks: Sequence[ReloadHook] = (),
) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        asyncio.run(serve(config, on_ready, reload_hooks))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, on_ready, reload_hooks))
