# ExchangeOnlineManagement 3.7.2, played for pswrap's tests on a real pwsh (never for production).
#
# Connect-ExchangeOnline -AccessToken -Organization checks the token the identity-provider stand-in
# issued: its RS256 signature against the key set in standin.json, issuer, audience, expiry (and
# whether the service revoked it), the Exchange.ManageAsApp role, and the tenant the organization
# belongs to. It fails as the real module
# does (../shared/docs/real-captures.md 1.1-1.6): the catch block rethrows with `throw $_.Exception`,
# so a refused token arrives as a record whose message and FullyQualifiedErrorId are `UnAuthorized`,
# category OperationStopped, no activity, exception System.UnauthorizedAccessException. The Exchange
# role assignment (standin.json "rbac") decides the rest: "assigned" connects; "unsupported" prints
# the banner and throws the real SystemException text; "none" connects, generates no cmdlets, and
# every cmdlet is then "not recognized" (real-captures 1.10).
#
# Connecting writes the generated cmdlets (Get-Mailbox, Set-Mailbox, Get-AcceptedDomain) to a
# tmpEXO_<random> module file in the temp folder and imports it, as the real module does; they serve
# the mailboxes of tests/standins/exchange_data.py (mailboxes.json beside this file). Every connect,
# disconnect, cmdlet call and change is appended to the journal file named in standin.json.

Set-StrictMode -Version 3.0

$script:ModuleVersion = '3.7.2'
$script:Connection = $null        # this runspace's connection (modules are per runspace)
$script:Changes = @{}             # mailbox index -> @{ property = value }: this runspace's Set-Mailbox changes
$script:Mailboxes = $null         # the fixture data, read once

$script:RoleNotSupported = "The role assigned to application {0} isn't supported in this scenario. Please check " +
    "online documentation for assigning correct Directory Roles to Azure AD Application for EXO App-Only Authentication."
$script:Banner = @'
----------------------------------------------------------------------------------------
This V3 EXO PowerShell module contains new REST API backed Exchange Online cmdlets which doesn't require WinRM for Client-Server communication. You can now run these cmdlets after turning off WinRM Basic Auth in your client machine thus making it more secure.

Unlike the EXO* prefixed cmdlets, the cmdlets in this module support full functional parity with the RPS (V1) cmdlets.

V3 cmdlets in the downloaded module are resilient to transient failures, handling retries and throttling errors inherently.

REST backed EOP and SCC cmdlets are also available in the V3 module. Similar to EXO, the cmdlets can be run without WinRM basic auth enabled.

For more information check https://aka.ms/exov3-module

Starting with EXO V3.7, use the LoadCmdletHelp parameter alongside Connect-ExchangeOnline to access the Get-Help cmdlet, as it will not be loaded by default
----------------------------------------------------------------------------------------
'@

function Get-StandinConfig {
    Get-Content -LiteralPath (Join-Path $PSScriptRoot 'standin.json') -Raw | ConvertFrom-Json -AsHashtable
}

function Write-StandinJournal {
    param([hashtable] $Config, [string] $Event, [hashtable] $Fields = @{})
    if (-not $Config['journal']) { return }
    $entry = [ordered]@{ event = $Event; pid = $PID; time = [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() / 1000.0 }
    foreach ($key in $Fields.Keys) { $entry[$key] = $Fields[$key] }
    [System.IO.File]::AppendAllText($Config['journal'], (ConvertTo-Json -InputObject $entry -Compress) + "`n")
}

function ConvertFrom-Base64Url {
    param([string] $Text)
    $padded = $Text.Replace('-', '+').Replace('_', '/')
    switch ($padded.Length % 4) { 2 { $padded += '==' } 3 { $padded += '=' } 1 { throw 'bad base64url' } }
    [Convert]::FromBase64String($padded)
}

function Test-StandinToken {
    # What is wrong with the token for this organization ($null: nothing), and its claims.
    param([hashtable] $Config, [string] $Token, [string] $Organization)
    $parts = $Token.Split('.')
    if ($parts.Count -ne 3) { return 'malformed', $null }
    try {
        $header = [Text.Encoding]::UTF8.GetString((ConvertFrom-Base64Url $parts[0])) | ConvertFrom-Json -AsHashtable
        $claims = [Text.Encoding]::UTF8.GetString((ConvertFrom-Base64Url $parts[1])) | ConvertFrom-Json -AsHashtable
        $signature = ConvertFrom-Base64Url $parts[2]
    }
    catch { return 'malformed', $null }
    if ($header['alg'] -ne 'RS256') { return 'signature', $claims }
    $key = @($Config['jwks']['keys'] | Where-Object { $_['kid'] -eq $header['kid'] })
    if ($key.Count -ne 1) { return 'signature', $claims }
    $rsa = [System.Security.Cryptography.RSA]::Create()
    try {
        $parameters = [System.Security.Cryptography.RSAParameters]::new()
        $parameters.Modulus = ConvertFrom-Base64Url $key[0]['n']
        $parameters.Exponent = ConvertFrom-Base64Url $key[0]['e']
        $rsa.ImportParameters($parameters)
        $signed = [Text.Encoding]::ASCII.GetBytes($parts[0] + '.' + $parts[1])
        $valid = $rsa.VerifyData($signed, $signature, [System.Security.Cryptography.HashAlgorithmName]::SHA256,
            [System.Security.Cryptography.RSASignaturePadding]::Pkcs1)
    }
    finally { $rsa.Dispose() }
    if (-not $valid) { return 'signature', $claims }
    $tenant = [string] $claims['tid']
    if ($claims['iss'] -ne "https://sts.windows.net/$tenant/") { return 'issuer', $claims }
    if ($claims['aud'] -ne $Config['audience']) { return 'audience', $claims }
    $now = [DateTimeOffset]::UtcNow.ToUnixTimeSeconds()
    if ([double] $claims['exp'] - [double] $Config['clock_skew'] -le $now) { return 'expired', $claims }
    if (@($Config['revoked']) -contains $claims['uti']) { return 'revoked', $claims }
    $roles = @(if ($claims.ContainsKey('roles')) { $claims['roles'] })
    if ($roles -notcontains 'Exchange.ManageAsApp') { return 'role', $claims }
    $known = @($Config['tenants'] | Where-Object { $_['id'] -eq $Organization -or $_['domain'] -eq $Organization })
    if ($known.Count -ne 1 -or $known[0]['id'] -ne $tenant) { return 'organization', $claims }
    $null, $claims
}

function New-StandinExoModule {
    # The module the real one downloads at connect (tmpEXO_<random>): written to the temp folder, imported globally.
    param([hashtable] $Config, [hashtable] $Connection, [string[]] $CommandName)
    $name = 'tmpEXO_' + [IO.Path]::GetRandomFileName().Replace('.', '')
    $folder = Join-Path ([IO.Path]::GetTempPath()) $name
    $null = New-Item -ItemType Directory -Path $folder
    $file = Join-Path $folder "$name.psm1"
    Copy-Item -LiteralPath (Join-Path $PSScriptRoot 'tmpEXO.template.psm1') -Destination $file
    $Connection['ModuleFolder'] = $folder
    $exported = @('Get-Mailbox', 'Set-Mailbox', 'Get-AcceptedDomain')
    if ($Config['rbac'] -eq 'none') { $exported = @() }        # no Exchange role: nothing is generated
    elseif ($CommandName) { $exported = @($exported | Where-Object { $CommandName -contains $_ }) }
    $state = @{
        Connection = $Connection; Changes = $script:Changes; Data = (Get-StandinMailboxes)
        ConfigPath = (Join-Path $PSScriptRoot 'standin.json')
    }
    Import-Module -Name $file -Global -ArgumentList $state -Function $exported -DisableNameChecking -PassThru
}

function Get-StandinMailboxes {
    if ($null -eq $script:Mailboxes) {
        $script:Mailboxes = Get-Content -LiteralPath (Join-Path $PSScriptRoot 'mailboxes.json') -Raw |
            ConvertFrom-Json -AsHashtable
    }
    $script:Mailboxes
}

function Connect-ExchangeOnline {
    [CmdletBinding(DefaultParameterSetName = 'AccessToken')]
    param(
        [Parameter(Position = 0)] [string] $ConnectionUri,
        [string] $AccessToken,
        [string] $Organization,
        [string] $DelegatedOrganization,
        [string] $UserPrincipalName,
        [string] $ExchangeEnvironmentName = 'O365Default',
        [string[]] $CommandName,
        [switch] $SkipLoadingFormatData,
        [ValidateRange(1, 1000)] [uint32] $PageSize = 1000,
        [switch] $ShowBanner = $true,
        [switch] $LoadCmdletHelp,
        [switch] $ShowProgress
    )
    process {
        $config = Get-StandinConfig
        try {
            Write-Verbose "ModuleVersion: $script:ModuleVersion"
            if (-not $AccessToken) { throw [System.NotSupportedException]::new('The test stand-in plays -AccessToken only.') }
            if (-not $Organization) {
                throw [System.ArgumentException]::new('AccessToken requires Organization, DelegatedOrganization or UserPrincipalName to be specified.')
            }
            Write-Verbose '[ThreadID: #] Returning the provided AccessToken'
            $problem, $claims = Test-StandinToken -Config $config -Token $AccessToken -Organization $Organization
            if ($null -eq $problem -and $config['rbac'] -eq 'unsupported') { $problem = 'unsupported role' }
            Write-StandinJournal $config 'connect' @{ ok = ($null -eq $problem); problem = $problem; organization = $Organization }
            if ($null -ne $problem -and $problem -ne 'unsupported role') {
                Write-Verbose 'Failed to fetch banner content from server. Reason: Object reference not set to an instance of an object.'
                throw [System.UnauthorizedAccessException]::new('UnAuthorized')
            }
            if ($ShowBanner) { Write-Information $script:Banner }
            if ($problem -eq 'unsupported role') {
                throw [System.SystemException]::new(($script:RoleNotSupported -f $claims['appid']))
            }
            if ($null -ne $script:Connection) { Disconnect-StandinConnection $config }
            $connection = @{
                ConnectionId = [guid]::NewGuid().ToString()
                Organization = $Organization
                TenantId = $claims['tid']
                AppId = $claims['appid']
                Expires = [double] $claims['exp']
                Uti = $claims['uti']
                Calls = 0
            }
            $module = New-StandinExoModule -Config $config -Connection $connection -CommandName $CommandName
            $connection['Module'] = $module
            $script:Connection = $connection
        }
        catch {
            if ($_.Exception -ne $null) {
                Write-Verbose 'ConnectionContext Removed'
                if ($_.Exception.InnerException -ne $null) {
                    throw $_.Exception.InnerException;
                }
                else {
                    throw $_.Exception;
                }
            }
            else {
                throw $_;
            }
        }
    }
}

function Disconnect-StandinConnection {
    param([hashtable] $Config)
    $connection = $script:Connection
    $script:Connection = $null
    if ($null -eq $connection) { return }
    Remove-Module -ModuleInfo $connection['Module'] -Force -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath $connection['ModuleFolder'] -Recurse -Force -ErrorAction SilentlyContinue
}

function Disconnect-ExchangeOnline {
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    param([string] $ConnectionId)
    process {
        if (-not $PSCmdlet.ShouldProcess('all the connections', 'Disconnect')) { return }
        $config = Get-StandinConfig
        Write-StandinJournal $config 'disconnect' @{ was_connected = ($null -ne $script:Connection) }
        Disconnect-StandinConnection $config
        Write-Information 'Disconnected successfully !'
    }
}

function Get-ConnectionInformation {
    [CmdletBinding()]
    param()
    if ($null -eq $script:Connection) { return }
    [pscustomobject]@{
        ConnectionId = $script:Connection['ConnectionId']
        State = 'Connected'
        Organization = $script:Connection['Organization']
        TenantID = $script:Connection['TenantId']
        AppId = $script:Connection['AppId']
        TokenExpiryTimeUTC = [DateTimeOffset]::FromUnixTimeSeconds([long] $script:Connection['Expires']).UtcDateTime
        ModuleName = $script:Connection['Module'].Name
    }
}
