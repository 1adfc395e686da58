"""Exchange Online for the pwsh stand-in: the ExchangeOnlineManagement module's cmdlets.

``cmdlets.py`` registers ``Import-Module``, ``Get-Module``, ``Connect-ExchangeOnline``,
``Disconnect-ExchangeOnline``, ``Get-ConnectionInformation``, ``Get-Mailbox``, ``Get-Recipient``,
``Get-AcceptedDomain`` and ``Set-Mailbox`` into the stand-in's command table (list
``tests.standins.exchange.cmdlets`` in the stand-in config's ``extensions``). ``data.py`` holds the
fixture mailboxes, shaped like the real Exchange objects in ``../shared/corpus/clixml``.

Configured through the stand-in switch ``exchange`` (see :class:`cmdlets.ExchangeSwitches`); the
fixture ``tests/fixtures/exchange.py`` writes it from the identity-provider stand-in.
"""
