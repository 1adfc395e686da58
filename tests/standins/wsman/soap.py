"""SOAP envelopes as a WinRM host reads and writes them: request headers, answers, WSMan faults.

A request names its ``wsa:Action``, ``wsman:ResourceURI``, ``wsa:MessageID``, ``wsman:MaxEnvelopeSize``
(the largest answer the client accepts), ``wsman:OperationTimeout`` and the ``wsman:SelectorSet`` /
``wsman:OptionSet``. An answer relates to the request's MessageID. A fault is a SOAP 1.2 fault whose
Detail holds a ``wsmanfault:WSManFault`` with the numeric ``Code`` and the ``Message`` (what clients
show and test on).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

S = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
WSMV = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
WSMANFAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
WST = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
PWSH = "http://schemas.microsoft.com/powershell"
XML = "http://www.w3.org/XML/1998/namespace"
CONFIG = "http://schemas.microsoft.com/wbem/wsman/1/config"

ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

for _prefix, _uri in (("s", S), ("a", WSA), ("w", WSMAN), ("p", WSMV), ("f", WSMANFAULT), ("rsp", RSP),
                      ("x", WST)):  # fmt: skip
    ET.register_namespace(_prefix, _uri)


class Action:
    CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
    DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
    GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
    COMMAND = f"{RSP}/Command"
    SEND = f"{RSP}/Send"
    RECEIVE = f"{RSP}/Receive"
    SIGNAL = f"{RSP}/Signal"

    @staticmethod
    def short(action: str) -> str:
        return action.rsplit("/", 1)[-1]


class Code:
    """WSMan error codes (HRESULTs) the stand-in answers with, and their SOAP subcodes."""

    ACCESS_DENIED = 5
    RESOURCE_NOT_FOUND = 0x80338000  # unknown session configuration
    PROVIDER_FAILURE = 0x80338003  # the PowerShell plug-in failed (the session broke)
    HEADER_REQUIRED = 0x80338011
    ACTION_NOT_SUPPORTED = 0x80338013
    OPERATION_TIMED_OUT = 0x80338029  # 2150858793: a Receive with nothing to say
    ENCODING_LIMIT = 0x80338035  # the request is larger than MaxEnvelopeSize
    INVALID_PARAMETER = 0x8033803A
    MAX_ENVELOPE_SIZE_EXCEEDED = 0x80338048
    SHELL_NOT_FOUND = 0x8033805B  # 2150858843

    SUBCODES = {
        ACCESS_DENIED: "w:AccessDenied",
        RESOURCE_NOT_FOUND: "w:InvalidResourceURI",
        PROVIDER_FAILURE: "w:InternalError",
        HEADER_REQUIRED: "a:MessageInformationHeaderRequired",
        ACTION_NOT_SUPPORTED: "a:ActionNotSupported",
        OPERATION_TIMED_OUT: "w:TimedOut",
        ENCODING_LIMIT: "w:EncodingLimit",
        INVALID_PARAMETER: "w:InvalidParameter",
        MAX_ENVELOPE_SIZE_EXCEEDED: "w:EncodingLimit",
        SHELL_NOT_FOUND: "w:InvalidSelectors",
    }
    RECEIVER = {PROVIDER_FAILURE, OPERATION_TIMED_OUT}


class Fault(Exception):
    """A WSMan fault to answer with (HTTP 500)."""

    def __init__(
        self, code: int, message: str, *, reason: str | None = None, detail: str | None = None
    ) -> None:
        self.code = code
        self.message = message
        #: The SOAP Reason text when Windows words it differently from the WSManFault's Message.
        self.reason = reason
        #: The ``w:FaultDetail`` URI Windows adds to some faults (``…/faultDetail/UnexpectedSelectors``).
        self.detail = detail
        super().__init__(f"WSMan fault {code}: {message}")


class BadRequest(Exception):
    """Not a SOAP envelope at all (HTTP 400)."""


@dataclass
class Request:
    action: str
    resource_uri: str
    message_id: str
    max_envelope_size: int
    operation_timeout: float
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    body: ET.Element | None = None

    @property
    def shell_id(self) -> str | None:
        value = self.selectors.get("ShellId")
        return value.upper() if value else None


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def seconds(duration: str) -> float:
    """An xs:duration such as ``PT20S`` or ``PT60.000S`` in seconds."""
    match = _DURATION.match(duration.strip())
    if not match or duration.strip() in ("P", "PT"):
        raise ValueError(f"not an xs:duration: {duration!r}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def parse_request(data: bytes) -> Request:
    """Read a request envelope. Raises :class:`BadRequest` or :class:`Fault`."""
    try:
        envelope = ET.fromstring(data)
    except ET.ParseError as problem:
        raise BadRequest(f"not XML: {problem}") from None
    if envelope.tag != f"{{{S}}}Envelope":
        raise BadRequest(f"not a SOAP 1.2 envelope: {envelope.tag}")
    header = envelope.find(f"{{{S}}}Header")
    if header is None:
        raise Fault(Code.HEADER_REQUIRED, "The WS-Management service cannot process the request. The request "
                    "does not have all the expected SOAP headers.")  # fmt: skip

    def text(tag: str) -> str | None:
        element = header.find(tag)
        return None if element is None or element.text is None else element.text.strip()

    action = text(f"{{{WSA}}}Action")
    message_id = text(f"{{{WSA}}}MessageID")
    resource_uri = text(f"{{{WSMAN}}}ResourceURI")
    missing = [
        n for n, v in (("Action", action), ("MessageID", message_id), ("ResourceURI", resource_uri)) if not v
    ]
    if missing:
        raise Fault(
            Code.HEADER_REQUIRED,
            "The WS-Management service cannot process the request. The request does not have all the "
            f"expected SOAP headers (missing: {', '.join(missing)}).",
        )
    max_size = text(f"{{{WSMAN}}}MaxEnvelopeSize") or "153600"
    timeout = text(f"{{{WSMAN}}}OperationTimeout") or "PT60S"
    try:
        max_envelope_size = int(max_size)
        operation_timeout = seconds(timeout)
    except ValueError as problem:
        raise Fault(
            Code.INVALID_PARAMETER, f"The WS-Management service cannot process the request: {problem}"
        ) from None
    selectors = {
        s.get("Name", ""): (s.text or "")
        for s in header.findall(f"{{{WSMAN}}}SelectorSet/{{{WSMAN}}}Selector")
    }
    options = {
        o.get("Name", ""): (o.text or "") for o in header.findall(f"{{{WSMAN}}}OptionSet/{{{WSMAN}}}Option")
    }
    body = envelope.find(f"{{{S}}}Body")
    content = None if body is None or len(body) == 0 else body[0]
    assert action is not None and message_id is not None and resource_uri is not None
    return Request(
        action=action,
        resource_uri=resource_uri,
        message_id=message_id,
        max_envelope_size=max_envelope_size,
        operation_timeout=operation_timeout,
        selectors=selectors,
        options=options,
        body=content,
    )


def _envelope(action: str, relates_to: str | None) -> tuple[ET.Element, ET.Element]:
    envelope = ET.Element(f"{{{S}}}Envelope", {f"{{{XML}}}lang": "en-US"})
    header = ET.SubElement(envelope, f"{{{S}}}Header")
    ET.SubElement(header, f"{{{WSA}}}Action").text = action
    ET.SubElement(header, f"{{{WSA}}}MessageID").text = f"uuid:{str(uuid.uuid4()).upper()}"
    ET.SubElement(header, f"{{{WSA}}}To").text = ANONYMOUS
    if relates_to is not None:
        ET.SubElement(header, f"{{{WSA}}}RelatesTo").text = relates_to
    body = ET.SubElement(envelope, f"{{{S}}}Body")
    return envelope, body


def answer(request: Request, content: ET.Element | list[ET.Element] | None) -> bytes:
    """The response envelope to ``request`` (action ``<request action>Response``) holding ``content``."""
    envelope, body = _envelope(f"{request.action}Response", request.message_id)
    for element in [content] if isinstance(content, ET.Element) else content or []:
        body.append(element)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=False)


def fault(
    code: int,
    message: str,
    *,
    relates_to: str | None,
    machine: str = "localhost",
    reason: str | None = None,
    detail: str | None = None,
) -> bytes:
    """A WSMan fault envelope (``reason`` when the SOAP Reason differs from the Message, ``detail`` a
    ``w:FaultDetail`` URI), shaped as Windows shapes it."""
    envelope, body = _envelope(FAULT_ACTION, relates_to)
    soap_fault = ET.SubElement(body, f"{{{S}}}Fault")
    code_element = ET.SubElement(soap_fault, f"{{{S}}}Code")
    ET.SubElement(code_element, f"{{{S}}}Value").text = "s:Receiver" if code in Code.RECEIVER else "s:Sender"
    subcode = ET.SubElement(code_element, f"{{{S}}}Subcode")
    ET.SubElement(subcode, f"{{{S}}}Value").text = Code.SUBCODES.get(code, "w:InternalError")
    reason_element = ET.SubElement(soap_fault, f"{{{S}}}Reason")
    ET.SubElement(reason_element, f"{{{S}}}Text", {f"{{{XML}}}lang": "en-US"}).text = reason or message
    detail_element = ET.SubElement(soap_fault, f"{{{S}}}Detail")
    if detail:
        ET.SubElement(detail_element, f"{{{WSMAN}}}FaultDetail").text = detail
    wsman_fault = ET.SubElement(
        detail_element, f"{{{WSMANFAULT}}}WSManFault", Code=str(code), Machine=machine
    )
    ET.SubElement(wsman_fault, f"{{{WSMANFAULT}}}Message").text = message
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=False)
