// The storage account: Functions host storage (keys, leases, the Flex Consumption deployment
// container, the Elastic Premium package container) and the failure store table. Shared keys
// and anonymous blob access are off, so every caller authenticates with Entra ID; the app's
// identity gets exactly the two data roles it needs, on this account only.

@description('Azure region.')
param location string

@description('Storage account name: 3 to 24 lower-case letters and digits.')
@minLength(3)
@maxLength(24)
param name string

@description('Replication: Standard_LRS, or Standard_ZRS where the region offers it.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_LRS'

@description('Blob container Flex Consumption deploys the package to.')
param deploymentContainerName string

@description('Blob container the Elastic Premium plan runs the package from (WEBSITE_RUN_FROM_PACKAGE).')
param packageContainerName string

@description('Table that keeps failed deliveries (DVROUTER_FAILURES_TABLE).')
param failuresTableName string

@description('Principal id of the user-assigned identity the Function App uses.')
param principalId string

@description('Principal id of the deployment pipeline, granted write access to the package container only. Empty for none.')
param deployerPrincipalId string = ''

// ARM checks the type against the principal and refuses a mismatch (UnmatchedPrincipalType):
// a person deploying by hand passes User, a pipeline ServicePrincipal.
@description('What deployerPrincipalId is: ServicePrincipal (a pipeline: app registration or managed identity), User (a person) or Group.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param deployerPrincipalType string = 'ServicePrincipal'

@description('Refuse traffic from public networks; reachable only through private endpoints.')
param privateOnly bool = false

param tags object = {}

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    publicNetworkAccess: privateOnly ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateOnly ? 'Deny' : 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource packageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: packageContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource failuresTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: failuresTableName
}

// The Functions host keeps its keys, leases and (on Flex) the deployed package in blobs.
resource blobOwnerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// dvrouter's failure store (aztables).
resource tableContributorRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, storageTableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The pipeline uploads the Elastic Premium package; it gets write access to that container
// and nowhere else.
resource deployerPackageRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(packageContainer.id, deployerPrincipalId, storageBlobDataContributor)
  scope: packageContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

output name string = account.name
output id string = account.id
output tableServiceUri string = 'https://${account.name}.table.${environment().suffixes.storage}'
output blobEndpoint string = 'https://${account.name}.blob.${environment().suffixes.storage}'
