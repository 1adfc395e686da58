# The cmdlets Connect-ExchangeOnline generates (test stand-in): copied to $env:TEMP/tmpEXO_<random>/
# and imported globally at connect, as the real module does with the module it downloads. Errors come
# from Write-ErrorMessage in the real shape (real-captures.md 1.24): message `ExXXXXXX|<type>|<text>`,
# CategoryInfo `NotSpecified: (:) [<cmdlet>], <reason>`, FullyQualifiedErrorId
# `[Server=…,RequestId=…,TimeStamp=…],Write-ErrorMessage`. The 401 of a token that expired (or that
# the service revoked) after connect and the throttling answer are modelled in that shape (no capture
# of either exists: real-captures.md 1.33).
param([hashtable] $State)

Set-StrictMode -Version 3.0

$script:State = $State
$script:MoreResults = 'There are more results available than are currently displayed. To view them, increase the value for the ResultSize parameter.'

function Write-ErrorMessage {
    param([string] $Message, [string] $Activity, [string] $Reason, [Exception] $Exception)
    if ($null -eq $Exception) { $Exception = [System.Exception]::new($Message) }
    $stamp = [DateTime]::UtcNow.ToString('r', [Globalization.CultureInfo]::InvariantCulture)
    $id = "[Server=NAMPR01MB0001,RequestId=$([guid]::NewGuid()),TimeStamp=$stamp],Write-ErrorMessage"
    $record = [System.Management.Automation.ErrorRecord]::new($Exception, $id, 'NotSpecified', $null)
    $record.ErrorDetails = [System.Management.Automation.ErrorDetails]::new($Message)
    $record.CategoryInfo.Activity = $Activity
    $record.CategoryInfo.Reason = $Reason
    throw $record
}

function Enter-ExoCall {
    # Every generated cmdlet starts here: journal the call, then the service's 401 and throttling.
    param([string] $Name)
    $config = Get-Content -LiteralPath $script:State.ConfigPath -Raw | ConvertFrom-Json -AsHashtable
    $connection = $script:State.Connection
    $connection['Calls'] += 1
    if ($config['journal']) {
        $line = ConvertTo-Json -Compress -InputObject ([ordered]@{ event = 'cmdlet'; pid = $PID; name = $Name })
        [System.IO.File]::AppendAllText($config['journal'], $line + "`n")
    }
    $expired = $connection['Expires'] - [double] $config['clock_skew'] -le [DateTimeOffset]::UtcNow.ToUnixTimeSeconds()
    if ($expired -or @($config['revoked']) -contains $connection['Uti']) {
        Write-ErrorMessage -Message 'UnAuthorized' -Activity $Name -Reason 'UnauthorizedAccessException' `
            -Exception ([System.UnauthorizedAccessException]::new('UnAuthorized'))
    }
    $after = $config['throttle_after']
    if ($null -ne $after -and $connection['Calls'] -gt $after -and $connection['Calls'] -le $after + $config['throttle_times']) {
        Write-ErrorMessage -Activity $Name -Reason 'RestClientException' -Message ('|Microsoft.Exchange.Management.RestApiClient.RestClientException|' +
            'You have reached the maximum number of concurrent requests per tenant. Please wait and try again.')
    }
    $config
}

function ConvertFrom-ExoValue {
    param([string] $Kind, $Value)
    if ($null -eq $Value) { return $null }
    switch ($Kind) {
        'guid' { return [guid] $Value }
        'datetime' { return [datetime]::new([long] $Value, [DateTimeKind]::Utc) }
        'timespan' { return [timespan]::new([long] $Value) }
        'strings' { return , [string[]] @($Value) }
        'int' { return [int] $Value }
        default { return $Value }
    }
}

function Get-ExoValues {
    # Mailbox $Index's properties (this runspace's changes applied), raw from mailboxes.json.
    param([int] $Index)
    $values = $script:State.Data['mailboxes'][$Index]
    $changes = $script:State.Changes[$Index]
    if ($null -eq $changes) { return $values }
    $copy = @{} + $values
    foreach ($key in $changes.Keys) { $copy[$key] = $changes[$key] }
    $copy
}

function New-ExoObject {
    param([object[]] $Fields, [hashtable] $Values, [string[]] $TypeNames)
    $properties = [ordered]@{}
    foreach ($field in $Fields) {
        $properties[$field[0]] = ConvertFrom-ExoValue -Kind $field[1] -Value $Values[$field[0]]
    }
    $object = [pscustomobject] $properties
    $object.PSObject.TypeNames.Clear()
    foreach ($name in $TypeNames) { $object.PSObject.TypeNames.Add($name) }
    $object
}

function Find-ExoMailbox {
    param([string] $Identity, [string] $Activity)
    $wanted = $Identity.Trim().ToLowerInvariant()
    if ($wanted.StartsWith('smtp:')) { $wanted = $wanted.Substring(5) }
    $count = $script:State.Data['mailboxes'].Count
    for ($index = 0; $index -lt $count; $index++) {
        $values = Get-ExoValues $index
        foreach ($key in 'Alias', 'Name', 'DisplayName', 'PrimarySmtpAddress', 'UserPrincipalName', 'DistinguishedName',
            'ExternalDirectoryObjectId', 'Guid', 'ExchangeGuid') {
            if ([string] $values[$key] -eq $wanted) { return $index }
        }
        foreach ($address in $values['EmailAddresses']) {
            if ($address.Substring($address.IndexOf(':') + 1) -eq $wanted) { return $index }
        }
    }
    Write-ErrorMessage -Activity $Activity -Reason 'ManagementObjectNotFoundException' -Message (
        'Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation ' +
        "couldn't be performed because object '$Identity' couldn't be found on 'NAMPR01A001.PROD.OUTLOOK.COM'.")
}

function Get-Mailbox {
    [CmdletBinding()]
    param(
        [Parameter(Position = 0, ValueFromPipeline = $true)] [string] $Identity,
        [string] $ResultSize = '1000',
        [string[]] $RecipientTypeDetails,
        [string] $Filter
    )
    process {
        $null = Enter-ExoCall 'Get-Mailbox'
        if ($Filter) { throw 'The test stand-in does not play -Filter.' }
        $data = $script:State.Data
        if ($Identity) { $indexes = @(Find-ExoMailbox -Identity $Identity -Activity 'Get-Mailbox') }
        else { $indexes = 0..($data['mailboxes'].Count - 1) }
        $limit = if ($ResultSize -eq 'Unlimited') { [int]::MaxValue } else { [int] $ResultSize }
        $shown = 0
        foreach ($index in $indexes) {
            $values = Get-ExoValues $index
            if ($RecipientTypeDetails -and $RecipientTypeDetails -notcontains $values['RecipientTypeDetails']) { continue }
            if ($shown -ge $limit) { Write-Warning $script:MoreResults; break }
            New-ExoObject $data['mailbox_fields'] $values $data['mailbox_types']
            $shown++
        }
    }
}

function Get-AcceptedDomain {
    [CmdletBinding()]
    param([Parameter(Position = 0)] [string] $Identity)
    $null = Enter-ExoCall 'Get-AcceptedDomain'
    $data = $script:State.Data
    foreach ($domain in $data['accepted_domains']) {
        if ($Identity -and $domain['Name'] -ne $Identity) { continue }
        New-ExoObject $data['accepted_domain_fields'] $domain $data['accepted_domain_types']
    }
}

function Set-Mailbox {
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)] [string] $Identity,
        [string] $DisplayName,
        [bool] $HiddenFromAddressListsEnabled,
        [bool] $LitigationHoldEnabled,
        [bool] $SingleItemRecoveryEnabled,
        [string] $Office,
        [object] $EmailAddresses,
        [object] $GrantSendOnBehalfTo,
        [timespan] $RetainDeletedItemsFor,
        [string] $ProhibitSendQuota,
        [string] $CustomAttribute1,
        [string] $CustomAttribute2,
        [string] $CustomAttribute3
    )
    process {
        $config = Enter-ExoCall 'Set-Mailbox'
        $index = Find-ExoMailbox -Identity $Identity -Activity 'Set-Mailbox'
        $current = Get-ExoValues $index
        $changed = @{}
        foreach ($name in $PSBoundParameters.Keys) {
            if ($name -in 'Identity', 'Confirm', 'WhatIf', 'Verbose', 'Debug', 'ErrorAction', 'WarningAction',
                'InformationAction', 'ErrorVariable', 'WarningVariable', 'InformationVariable', 'OutVariable',
                'OutBuffer', 'PipelineVariable', 'ProgressAction') { continue }
            $value = $PSBoundParameters[$name]
            if ($name -in 'EmailAddresses', 'GrantSendOnBehalfTo') {
                if ($value -is [System.Collections.IDictionary]) {
                    $items = [System.Collections.Generic.List[string]]::new([string[]] @($current[$name]))
                    foreach ($gone in @($value['Remove'])) { if ($null -ne $gone) { $null = $items.Remove([string] $gone) } }
                    foreach ($new in @($value['Add'])) { if ($null -ne $new -and -not $items.Contains([string] $new)) { $items.Add([string] $new) } }
                    $value = [string[]] $items
                }
                else { $value = [string[]] @($value) }
            }
            elseif ($value -is [timespan]) { $value = $value.Ticks }
            if ((ConvertTo-Json -Compress -InputObject $current[$name]) -ne (ConvertTo-Json -Compress -InputObject $value)) {
                $changed[$name] = $value
            }
        }
        if ($changed.Count -eq 0) {
            Write-Warning "The command completed successfully but no settings of '$($current['Identity'])' have been modified."
            return
        }
        if (-not $script:State.Changes.ContainsKey($index)) { $script:State.Changes[$index] = @{} }
        foreach ($name in $changed.Keys) { $script:State.Changes[$index][$name] = $changed[$name] }
        if ($config['journal']) {
            $line = ConvertTo-Json -Compress -InputObject ([ordered]@{ event = 'mutation'; pid = $PID; name = 'Set-Mailbox';
                    identity = $Identity; changes = @($changed.Keys | Sort-Object) })
            [System.IO.File]::AppendAllText($config['journal'], $line + "`n")
        }
    }
}
