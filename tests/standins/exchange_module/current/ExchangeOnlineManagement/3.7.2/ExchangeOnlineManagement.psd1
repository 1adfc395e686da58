# A test-only stand-in for Microsoft's ExchangeOnlineManagement module (tests/standins/exchange_module).
@{
    RootModule        = 'ExchangeOnlineManagement.psm1'
    ModuleVersion     = '3.7.2'
    GUID              = 'B5ECED50-AFA4-455B-847A-D8FB64140A22'
    Author            = 'pswrap tests'
    CompanyName       = 'pswrap tests'
    Description       = 'Test stand-in: Connect-ExchangeOnline -AccessToken checks the identity-provider stand-in''s tokens; fixture mailboxes.'
    PowerShellVersion = '7.0'
    FunctionsToExport = @('Connect-ExchangeOnline', 'Disconnect-ExchangeOnline', 'Get-ConnectionInformation')
    CmdletsToExport   = @()
    VariablesToExport = @()
    AliasesToExport   = @()
}
