# A test-only stand-in for ExchangeOnlineManagement 2.0.5: too old for Connect-ExchangeOnline -AccessToken.
@{
    RootModule        = 'ExchangeOnlineManagement.psm1'
    ModuleVersion     = '2.0.5'
    GUID              = 'B5ECED50-AFA4-455B-847A-D8FB64140A22'
    Author            = 'pswrap tests'
    Description       = 'Test stand-in of a module version without -AccessToken.'
    FunctionsToExport = @('Connect-ExchangeOnline', 'Disconnect-ExchangeOnline')
    CmdletsToExport   = @()
    VariablesToExport = @()
    AliasesToExport   = @()
}
