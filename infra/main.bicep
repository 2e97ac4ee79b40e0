// dvrouter: everything one environment needs, deployed into one resource group.
//
//   az deployment group create -g <resource-group> -f infra/main.bicep -p infra/dev.bicepparam
//
// One user-assigned identity is used by the Function App for everything. Nothing here uses an
// account key, a SAS or a connection string with a key: storage has shared keys off, Service Bus
// has local auth off, Application Insights has local auth off, Key Vault is in RBAC mode, and
// each role is granted on the one resource (or queue) that needs it. See infra/README.md.

targetScope = 'resourceGroup'

@description('Azure region; defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Environment name used in resource names, e.g. dev or prod (lower case).')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Prefix used in resource names (lower-case letters and digits).')
@minLength(2)
@maxLength(10)
param namePrefix string = 'dvrouter'

@description('flex: Flex Consumption (default). premium: Elastic Premium.')
@allowed([
  'flex'
  'premium'
])
param hostingPlan string = 'flex'

@description('Elastic Premium size (hostingPlan premium).')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param premiumSku string = 'EP1'

@description('Elastic Premium: most instances the plan bursts to.')
@minValue(1)
@maxValue(100)
param premiumMaximumElasticWorkerCount int = 20

@description('Flex Consumption: most instances the app scales out to. Flex\'s lowest maximum is 40, its highest 1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: runtime stack of the app; dvrouter is a custom handler.')
param flexRuntimeName string = 'custom'

@description('Flex Consumption: runtime version (az functionapp list-flexconsumption-runtimes --location <region> --runtime custom).')
param flexRuntimeVersion string = '1.0'

@description('Service Bus tier. Private networking needs Premium and forces it.')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

@description('Ingress queue (DVROUTER_QUEUE).')
param queueName string = 'dataverse-events'

@description('Table that keeps failed deliveries (DVROUTER_FAILURES_TABLE).')
param failuresTableName string = 'DeliveryFailures'

@description('Storage replication.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Dataverse organization ids (GUIDs), comma-separated; empty accepts every organization.')
param allowedOrganizationIds string = ''

@description('Dataverse environments dvrouter reads rows from (size-exceeded events, routes with fetch): <organization id or host>=https://<org>.crm.dynamics.com;... Empty: none. The identity needs an application user in each environment (docs/webapi.md).')
param dataverseEnvironments string = ''

@description('App settings the routes file names as %SETTING% (e.g. ERP_API_KEY); each reads the vault secret of the same name with _ as - (ERP-API-KEY).')
param consumerSecrets array = []

@description('Also require the x-dvrouter-key header on the webhook (vault secret dvrouter-webhook-keys), on top of the function key.')
param requireWebhookHeaderKey bool = true

@description('dvrouter log level.')
@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
param logLevel string = 'info'

@description('Email address alerts are sent to.')
@minLength(3)
param alertEmail string

@description('Failed invocations in 15 minutes above which the function-errors alert fires.')
@minValue(0)
param functionErrorThreshold int = 5

@description('Days Log Analytics keeps data.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Key Vault purge protection (cannot be turned off once on).')
param enablePurgeProtection bool = true

@description('Principal id of the deployment pipeline\'s identity: gets write access to the Elastic Premium package container. Empty for none.')
param deployerPrincipalId string = ''

@description('What deployerPrincipalId is: ServicePrincipal for a pipeline (an app registration or managed identity), User for a person, Group for a group.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param deployerPrincipalType string = 'ServicePrincipal'

@description('Role of the app on the ingress queue for the Service Bus trigger: Receiver (least privilege) or Owner (also lets the scale controller read the queue length for target-based scaling). See infra/README.md.')
@allowed([
  'Receiver'
  'Owner'
])
param serviceBusTriggerRole string = 'Receiver'

@description('Principal ids (groups by default) that may set secrets in the vault.')
param secretsOfficerPrincipalIds array = []

@description('Principal type of secretsOfficerPrincipalIds.')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param secretsOfficerPrincipalType string = 'Group'

@description('Integrate the app into a virtual network and reach Storage, Service Bus and Key Vault only through private endpoints. Forces Service Bus Premium.')
param enablePrivateNetworking bool = false

@description('Address space of the virtual network (enablePrivateNetworking).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnet the app integrates with (enablePrivateNetworking).')
param integrationSubnetPrefix string = '10.40.0.0/24'

@description('Subnet for the private endpoints (enablePrivateNetworking).')
param endpointSubnetPrefix string = '10.40.1.0/24'

@description('Application (client) id of the Entra ID app registration for sign-in to the console and the support API (infra/README.md, "Sign-in and roles"). Empty: no App Service authentication; the support API takes admin keys only.')
param entraClientId string = ''

@description('How long failures are kept after they were first kept (DVROUTER_FAILURE_RETENTION): 30d, 36h, or 0 to keep forever.')
param failureRetention string = '30d'

@description('How long replayed and discarded failures are kept after they were resolved (DVROUTER_RESOLVED_RETENTION); at most failureRetention.')
param resolvedRetention string = '30d'

@description('The Dataverse environment change tracking reads (DVROUTER_CHANGES_ENVIRONMENT, https://contoso.crm4.dynamics.com); empty turns it off.')
param changesEnvironment string = ''

@description('NCRONTAB schedule of the ChangeTracking timer (DVROUTER_CHANGES_SCHEDULE), six fields, seconds first.')
param changesSchedule string = '0 */5 * * * *'

@description('Minutes a table may go without a complete change-tracking read before it is stale (DVROUTER_CHANGES_STALE_AFTER and the alert); three schedule periods by default.')
@minValue(1)
param changesStaleAfterMinutes int = 15

@description('Tags on every resource.')
param tags object = {}

var token = uniqueString(resourceGroup().id, environmentName)
var baseName = '${namePrefix}-${environmentName}'
var allTags = union({
  application: 'dvrouter'
  environment: environmentName
}, tags)
// Private endpoints for Service Bus exist only in the Premium tier.
var effectiveServiceBusSku = enablePrivateNetworking ? 'Premium' : serviceBusSku
var deploymentContainerName = 'app-package'
var packageContainerName = 'releases'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${baseName}'
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    workspaceName: 'log-${baseName}'
    appInsightsName: 'appi-${baseName}'
    retentionInDays: logRetentionInDays
    principalId: identity.properties.principalId
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: take(toLower(replace('st${namePrefix}${environmentName}${token}', '-', '')), 24)
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    packageContainerName: packageContainerName
    failuresTableName: failuresTableName
    principalId: identity.properties.principalId
    deployerPrincipalId: deployerPrincipalId
    deployerPrincipalType: deployerPrincipalType
    privateOnly: enablePrivateNetworking
    tags: allTags
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    name: 'sb-${baseName}-${token}'
    skuName: effectiveServiceBusSku
    queueName: queueName
    principalId: identity.properties.principalId
    triggerRole: serviceBusTriggerRole
    privateOnly: enablePrivateNetworking
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: 'kv-${take(namePrefix, 8)}-${take(environmentName, 4)}-${take(token, 6)}'
    principalId: identity.properties.principalId
    secretsOfficerPrincipalIds: secretsOfficerPrincipalIds
    secretsOfficerPrincipalType: secretsOfficerPrincipalType
    enablePurgeProtection: enablePurgeProtection
    privateOnly: enablePrivateNetworking
    tags: allTags
  }
}

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  params: {
    location: location
    name: 'vnet-${baseName}'
    hostingPlan: hostingPlan
    addressPrefix: vnetAddressPrefix
    integrationSubnetPrefix: integrationSubnetPrefix
    endpointSubnetPrefix: endpointSubnetPrefix
    tags: allTags
  }
}

// One private endpoint per sub-resource the app reaches: storage blob (host, package), table
// (failure store) and queue (host), the Service Bus namespace, and the vault.
var endpointKinds = [
  'blob'
  'table'
  'queue'
  'namespace'
  'vault'
]

module endpoints 'modules/privateendpoint.bicep' = [for kind in endpointKinds: if (enablePrivateNetworking) {
  name: 'pe-${kind}'
  params: {
    location: location
    name: 'pe-${baseName}-${kind}'
    subnetId: enablePrivateNetworking ? network.outputs.endpointSubnetId : ''
    targetId: kind == 'namespace' ? serviceBus.outputs.id : (kind == 'vault' ? keyVault.outputs.id : storage.outputs.id)
    groupId: kind
    dnsZoneId: enablePrivateNetworking ? network.outputs.zoneIds[kind] : ''
    tags: allTags
  }
}]

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    name: 'func-${baseName}-${token}'
    planName: 'plan-${baseName}'
    hostingPlan: hostingPlan
    premiumSku: premiumSku
    premiumMaximumElasticWorkerCount: premiumMaximumElasticWorkerCount
    maximumInstanceCount: maximumInstanceCount
    flexRuntimeName: flexRuntimeName
    flexRuntimeVersion: flexRuntimeVersion
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    packageContainerName: packageContainerName
    failuresTableName: failuresTableName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    queueName: serviceBus.outputs.queueName
    keyVaultName: keyVault.outputs.name
    keyVaultUri: keyVault.outputs.uri
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    allowedOrganizationIds: allowedOrganizationIds
    dataverseEnvironments: dataverseEnvironments
    consumerSecrets: consumerSecrets
    requireWebhookHeaderKey: requireWebhookHeaderKey
    logLevel: logLevel
    appServiceAuth: !empty(entraClientId)
    failureRetention: failureRetention
    resolvedRetention: resolvedRetention
    changesEnvironment: changesEnvironment
    changesSchedule: changesSchedule
    changesStaleAfter: '${changesStaleAfterMinutes}m'
    integrationSubnetId: enablePrivateNetworking ? network.outputs.integrationSubnetId : ''
    tags: allTags
  }
  // The role assignments live in these modules; the app should start with its rights in place,
  // and reach the services through their private endpoints when those are on.
  dependsOn: [
    endpoints
  ]
}

// Sign-in with Entra ID in front of the console and the support API; DVROUTER_APPSERVICE_AUTH
// above is true exactly when this is deployed.
module auth 'modules/auth.bicep' = if (!empty(entraClientId)) {
  name: 'auth'
  params: {
    siteName: functionApp.outputs.name
    clientId: entraClientId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    namePrefix: baseName
    appInsightsName: monitoring.outputs.appInsightsName
    serviceBusNamespaceName: serviceBus.outputs.name
    queueName: serviceBus.outputs.queueName
    alertEmail: alertEmail
    functionErrorThreshold: functionErrorThreshold
    changesStaleAfterMinutes: changesStaleAfterMinutes
    tags: allTags
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    displayName: 'dvrouter consumers (${baseName})'
    appInsightsName: monitoring.outputs.appInsightsName
    tags: allTags
  }
}

output functionAppName string = functionApp.outputs.name
output webhookUrl string = 'https://${functionApp.outputs.defaultHostName}/api/dataverse/webhook'
output failuresApiUrl string = 'https://${functionApp.outputs.defaultHostName}/api/failures'
output healthUrl string = 'https://${functionApp.outputs.defaultHostName}/api/health'
output queueName string = serviceBus.outputs.queueName
output hostingPlan string = hostingPlan
output storageAccountName string = storage.outputs.name
output packageContainerName string = packageContainerName
output keyVaultName string = keyVault.outputs.name
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output identityClientId string = identity.properties.clientId
