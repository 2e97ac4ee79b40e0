// Production: Flex Consumption, zone-redundant storage, purge protection on.
// For regulated workloads set enablePrivateNetworking = true (it forces Service Bus Premium;
// read the private networking section of README.md first).
// Values that differ per organization come from the environment of whoever deploys (the
// deploy workflow sets them from the GitHub environment's variables); see README.md.
using './main.bicep'

param environmentName = 'prod'
param hostingPlan = 'flex'
param maximumInstanceCount = 100
param serviceBusSku = 'Standard'
param storageSku = 'Standard_ZRS'
param logLevel = 'info'
param logRetentionInDays = 90
param enablePurgeProtection = true
param enablePrivateNetworking = false
param functionErrorThreshold = 5
param alertEmail = readEnvironmentVariable('DVROUTER_ALERT_EMAIL')
// Production accepts only the organizations named here: the variable must be set.
param allowedOrganizationIds = readEnvironmentVariable('DVROUTER_ALLOWED_ORGS')
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
