// Development: Flex Consumption, Service Bus Standard, public endpoints.
// Values that differ per organization come from the environment of whoever deploys (the
// deploy workflow sets them from the GitHub environment's variables); see README.md.
using './main.bicep'

param environmentName = 'dev'
param hostingPlan = 'flex'
param maximumInstanceCount = 40
param serviceBusSku = 'Standard'
param storageSku = 'Standard_LRS'
param logLevel = 'debug'
param enablePurgeProtection = false
param enablePrivateNetworking = false
param alertEmail = readEnvironmentVariable('DVROUTER_ALERT_EMAIL')
param allowedOrganizationIds = readEnvironmentVariable('DVROUTER_ALLOWED_ORGS', '')
param dataverseEnvironments = readEnvironmentVariable('DVROUTER_DATAVERSE_ENVIRONMENTS', '')
param deployerPrincipalId = readEnvironmentVariable('DVROUTER_DEPLOYER_PRINCIPAL_ID', '')
// ServicePrincipal for a pipeline; a person deploying by hand sets User (see README.md).
param deployerPrincipalType = readEnvironmentVariable('DVROUTER_DEPLOYER_PRINCIPAL_TYPE', 'ServicePrincipal')
param secretsOfficerPrincipalIds = empty(readEnvironmentVariable('DVROUTER_SECRETS_OFFICER_ID', '')) ? [] : [
  readEnvironmentVariable('DVROUTER_SECRETS_OFFICER_ID', '')
]
param consumerSecrets = []
param tags = {
  costCenter: 'integration'
}
