"""The WinRM stand-in: a WS-Management host on 127.0.0.1 serving PowerShell over PSRP, as Windows does.

Layout (one concern per module):

* ``server.py`` - the host: HTTP/1.1 with Negotiate (NTLM) authentication per connection through
  pyspnego's acceptor, message encryption (or HTTPS, optionally with Basic), request recording and
  counting, fault switches.
* ``commands.py`` - commands only a host can offer the tests (``Wait-Rendezvous``).
* ``encryption.py`` - the ``multipart/encrypted`` bodies of WinRM message encryption.
* ``soap.py`` - request envelopes in, answers and WSMan faults out.
* ``shells.py`` - Create / Command / Send / Receive / Signal / Delete / Get on shells, each hosting the
  pwsh stand-in's PSRP runtime (``tests/standins/powershell/runtime.py``) and its command table.

Use it through the fixture ``wsman_standin`` (``tests/fixtures/wsman.py``)::

    def test_something(wsman_standin):              # wsman_https: the HTTPS listener
        transport = WinRMTransport(**wsman_standin.transport_options())   # host, port, http, ntlm, user…
        wsman_standin.set_faults(drop_receive=2)       # switches: see server.Faults
        wsman_standin.counts["Receive"], wsman_standin.received, wsman_standin.scripts
        wsman_standin.powershell.switches["x"] = 1     # the PowerShell stand-in's switches, for new shells
"""
