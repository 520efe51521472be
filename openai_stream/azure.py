"""Azure OpenAI: :class:`AzureClient`, the client for an Azure OpenAI resource.

Azure differs from the OpenAI API in three ways, all handled here:

- credentials: an ``api-key`` header, or a Microsoft Entra ID (Azure AD)
  token in ``Authorization: Bearer``, static or from a provider called for
  every request (so a token that expires is replaced);
- the ``api-version`` query parameter on every request;
- the path: ``{endpoint}/openai/deployments/{deployment}/chat/completions``,
  where the deployment is ``azure_deployment`` or, when none is given, the
  request's ``model``. The v1 API (``api_version="v1"``, or an endpoint
  ending in ``/openai/v1``) takes ``{endpoint}/openai/v1/chat/completions``
  with the deployment as ``model`` in the body, as the OpenAI API does.

Everything else (streams, events, tools, errors, ``with_options``) is the
:class:`~openai_stream.Client`'s.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Optional, Union
from urllib.parse import quote, urlsplit

from .client import Client, account_headers, shown_url
from .errors import OpenAIError
from .transport._http import DEFAULT_TIMEOUT, TimeoutTypes
from .transport._sse import DEFAULT_MAX_EVENT_BYTES

__all__ = ["AzureClient", "AzureADTokenProvider"]

AzureADTokenProvider = Callable[[], str]
"""A function that returns a Microsoft Entra ID token (``azure.identity``'s ``get_bearer_token_provider``)."""

# Paths that Azure serves under /deployments/{deployment}/ (the others sit right under /openai/).
_DEPLOYMENT_PATHS = frozenset(
    {
        "chat/completions",
        "completions",
        "embeddings",
        "audio/transcriptions",
        "audio/translations",
        "audio/speech",
        "images/generations",
        "images/edits",
    }
)
_V1_VERSIONS = frozenset({"v1"})
_CREDENTIALS = ("api_key", "azure_ad_token", "azure_ad_token_provider")


class AzureClient(Client):
    """A client for Azure OpenAI.

    ``azure_endpoint`` (``AZURE_OPENAI_ENDPOINT``) is the resource's URL,
    ``https://NAME.openai.azure.com``. ``api_version`` (``OPENAI_API_VERSION``)
    is sent as ``?api-version=`` with every request; ``"v1"`` selects the v1
    API instead, which needs no version. Give one credential: ``api_key``
    (``AZURE_OPENAI_API_KEY``), ``azure_ad_token`` (``AZURE_OPENAI_AD_TOKEN``,
    which wins over the key when both variables are set, as in openai-python)
    or ``azure_ad_token_provider``, called for every request.

    ``azure_deployment`` names the deployment every chat completion goes to;
    without it the ``model`` of each request names the deployment. ``base_url``
    replaces ``azure_endpoint`` for a gateway that exposes Azure's paths
    elsewhere (``https://gateway/openai`` or ``.../openai/deployments/NAME``).

    ``organization`` and ``project`` (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``)
    are sent as ``OpenAI-Organization`` and ``OpenAI-Project`` headers, as
    openai-python's ``AzureOpenAI`` sends them; ``default_headers`` win over
    them. The other settings are the :class:`~openai_stream.Client`'s.
    OpenAI's ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are not read: they
    belong to another service.
    """

    def __init__(
        self,
        *,
        azure_endpoint: Optional[str] = None,
        api_version: Optional[str] = None,
        azure_deployment: Optional[str] = None,
        api_key: Optional[str] = None,
        azure_ad_token: Optional[str] = None,
        azure_ad_token_provider: Optional[AzureADTokenProvider] = None,
        organization: Optional[str] = None,
        project: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        default_headers: Optional[Mapping[str, str]] = None,
        default_query: Optional[Mapping[str, Any]] = None,
        max_connections: int = 64,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        idle_timeout: Optional[float] = None,
        verify: Union[bool, str, None] = None,
    ) -> None:
        given = [name for name, value in zip(_CREDENTIALS, (api_key, azure_ad_token, azure_ad_token_provider))
                 if value is not None]
        if len(given) > 1:
            raise ValueError(
                f"give one credential, not {' and '.join(given)}: api_key, azure_ad_token or "
                "azure_ad_token_provider"
            )
        if not given:
            azure_ad_token = os.environ.get("AZURE_OPENAI_AD_TOKEN") or None
            if azure_ad_token is None:
                api_key = os.environ.get("AZURE_OPENAI_API_KEY") or None
        if api_key is None and azure_ad_token is None and azure_ad_token_provider is None:
            raise OpenAIError(
                "no Azure credential: pass api_key=..., azure_ad_token=... or azure_ad_token_provider=..., "
                "or set AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN)"
            )
        if api_version is None:
            api_version = os.environ.get("OPENAI_API_VERSION") or None
        if organization is None:
            organization = os.environ.get("OPENAI_ORG_ID") or None
        if project is None:
            project = os.environ.get("OPENAI_PROJECT_ID") or None
        if base_url is None:
            if azure_endpoint is None:
                azure_endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT") or None
            if azure_endpoint is None:
                raise OpenAIError(
                    "no Azure endpoint: pass azure_endpoint='https://NAME.openai.azure.com' or set "
                    "AZURE_OPENAI_ENDPOINT (or pass base_url=...)"
                )
        elif azure_endpoint is not None:
            raise ValueError("give azure_endpoint or base_url, not both")
        root = (base_url if base_url is not None else azure_endpoint or "").rstrip("/")
        v1 = api_version in _V1_VERSIONS or urlsplit(root).path.rstrip("/").endswith("/openai/v1")
        if api_version is None and not v1:
            raise OpenAIError(
                "no API version: pass api_version='2024-10-21' (or another dated version) or set "
                "OPENAI_API_VERSION; or use the v1 API, which needs none: api_version='v1'"
            )
        if v1 and azure_deployment is not None:
            raise ValueError(
                "the v1 API takes the deployment as model=... in each request, not azure_deployment"
            )
        if base_url is None:
            if v1:
                base_url = root if root.endswith("/openai/v1") else f"{root}/openai/v1"
            elif azure_deployment is not None:
                base_url = f"{root}/openai/deployments/{quote(azure_deployment, safe='')}"
            else:
                base_url = f"{root}/openai"
        self._settings: Dict[str, Any] = {
            "azure_endpoint": azure_endpoint,
            "api_version": api_version,
            "azure_deployment": azure_deployment,
            "api_key": api_key,
            "azure_ad_token": azure_ad_token,
            "azure_ad_token_provider": azure_ad_token_provider,
            "organization": organization,
            "project": project,
            "base_url": None if azure_endpoint is not None else base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "default_headers": dict(default_headers or {}),
            "default_query": dict(default_query or {}),
            "max_connections": max_connections,
            "max_event_bytes": max_event_bytes,
            "idle_timeout": idle_timeout,
            "verify": verify,
        }
        self.api_version = api_version
        self.azure_deployment = azure_deployment
        self.organization = organization
        self.project = project
        self._azure_ad_token = azure_ad_token
        self._azure_ad_token_provider = azure_ad_token_provider
        self._api_key = api_key
        self._v1 = v1
        self._root = root
        query = dict(default_query or {})
        if api_version is not None and api_version not in _V1_VERSIONS:
            query["api-version"] = api_version
        self._setup(
            api_key=api_key,  # never sent as a Bearer: auth below decides; kept to be redacted
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=account_headers(organization, project, default_headers),
            default_query=query,
            max_connections=max_connections,
            max_event_bytes=max_event_bytes,
            idle_timeout=idle_timeout,
            auth=self._auth_headers,
            verify=verify,
        )

    def __repr__(self) -> str:
        url = shown_url(self.base_url)
        return f"<openai_stream.AzureClient base_url={url!r} api_version={self.api_version!r}>"

    def _auth_headers(self) -> Dict[str, str]:
        """The credential headers of one request (the token provider is called each time)."""
        provider = self._azure_ad_token_provider
        if provider is not None:
            token = provider()
            if not isinstance(token, str) or not token:
                raise OpenAIError(
                    f"azure_ad_token_provider returned {type(token).__name__} {'' if token else 'empty '}"
                    "instead of a token string; check the provider (azure.identity's "
                    "get_bearer_token_provider returns one)"
                )
            return {"Authorization": f"Bearer {token}"}
        if self._azure_ad_token is not None:
            return {"Authorization": f"Bearer {self._azure_ad_token}"}
        return {"api-key": self._api_key or ""}

    def _route(self, path: str, body: Mapping[str, Any]) -> str:
        """Deployment paths go under ``/deployments/{model}`` when the client names no deployment.

        With ``azure_deployment``, the other paths (``responses``, ``models``...)
        go right under ``{endpoint}/openai/``, as Azure serves them.
        """
        path = path.lstrip("/")
        if self._v1:
            return path
        deployed = path in _DEPLOYMENT_PATHS
        if self.azure_deployment is not None:
            if deployed or self._settings["base_url"] is not None:
                return path
            return f"{self._root}/openai/{path}"  # an absolute URL: out of the deployment
        if deployed and "/deployments/" not in f"{urlsplit(self.base_url).path}/":
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise OpenAIError(
                    "Azure needs the deployment name: pass model='DEPLOYMENT' (or "
                    "AzureClient(azure_deployment=...))"
                )
            return f"deployments/{quote(model, safe='')}/{path}"
        return path

    def with_options(self, **changes: Any) -> AzureClient:
        """A client like this one with some settings changed, over the same connection pool.

        Takes the constructor's settings (and ``set_default_headers``,
        ``set_default_query``, see :meth:`Client.with_options`). A credential
        given here replaces the client's, whichever kind it was.
        """
        if any(changes.get(name) is not None for name in _CREDENTIALS):
            for name in _CREDENTIALS:
                changes.setdefault(name, None)
        if changes.get("base_url") is not None:
            changes.setdefault("azure_endpoint", None)
        elif changes.get("azure_endpoint") is not None:
            changes.setdefault("base_url", None)
        return super().with_options(**changes)
