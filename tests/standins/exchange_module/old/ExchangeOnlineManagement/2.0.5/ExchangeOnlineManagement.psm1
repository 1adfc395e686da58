# ExchangeOnlineManagement 2.0.5 (test stand-in): no -AccessToken parameter yet (it came in 3.1.0).
function Connect-ExchangeOnline {
    [CmdletBinding()]
    param(
        [Parameter(Position = 0)] [string] $ConnectionUri,
        [string] $Organization,
        [string] $AppId,
        [string] $CertificateThumbprint,
        [switch] $ShowBanner
    )
    throw 'The 2.0.5 test stand-in cannot connect.'
}

function Disconnect-ExchangeOnline {
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    param()
}
