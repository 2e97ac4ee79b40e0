// The virtual network for enablePrivateNetworking: one subnet the Function App joins (VNet
// integration, delegated to the hosting plan's service) and one subnet for private endpoints,
// plus the private DNS zones that make the services' usual host names resolve to those
// endpoints from inside the network.

@description('Azure region.')
param location string

@description('Virtual network name.')
param name string

@description('Hosting plan of the Function App: decides the integration subnet delegation.')
@allowed([
  'flex'
  'premium'
])
param hostingPlan string

@description('Address space of the virtual network.')
param addressPrefix string = '10.40.0.0/16'

@description('Subnet the Function App integrates with (at least /27 for Flex Consumption, /26 or more recommended).')
param integrationSubnetPrefix string = '10.40.0.0/24'

@description('Subnet that holds the private endpoints.')
param endpointSubnetPrefix string = '10.40.1.0/24'

param tags object = {}

// Flex Consumption integrates through Container Apps environments; Elastic Premium through
// App Service plans. Each needs its own delegation on the subnet.
var delegation = hostingPlan == 'flex' ? 'Microsoft.App/environments' : 'Microsoft.Web/serverFarms'
var integrationSubnetName = 'snet-app'
var endpointSubnetName = 'snet-endpoints'

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: integrationSubnetName
        properties: {
          addressPrefix: integrationSubnetPrefix
          delegations: [
            {
              name: 'functions'
              properties: {
                serviceName: delegation
              }
            }
          ]
        }
      }
      {
        name: endpointSubnetName
        properties: {
          addressPrefix: endpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

module blobZone 'dnszone.bicep' = {
  name: 'dns-blob'
  params: {
    zoneName: 'privatelink.blob.${environment().suffixes.storage}'
    vnetId: vnet.id
    tags: tags
  }
}

module tableZone 'dnszone.bicep' = {
  name: 'dns-table'
  params: {
    zoneName: 'privatelink.table.${environment().suffixes.storage}'
    vnetId: vnet.id
    tags: tags
  }
}

module queueZone 'dnszone.bicep' = {
  name: 'dns-queue'
  params: {
    zoneName: 'privatelink.queue.${environment().suffixes.storage}'
    vnetId: vnet.id
    tags: tags
  }
}

module serviceBusZone 'dnszone.bicep' = {
  name: 'dns-servicebus'
  params: {
    zoneName: 'privatelink.servicebus.windows.net'
    vnetId: vnet.id
    tags: tags
  }
}

module vaultZone 'dnszone.bicep' = {
  name: 'dns-vault'
  params: {
    zoneName: 'privatelink.vaultcore.azure.net'
    vnetId: vnet.id
    tags: tags
  }
}

output vnetId string = vnet.id
output integrationSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, integrationSubnetName)
output endpointSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, endpointSubnetName)
// Zone ids by private endpoint group id.
output zoneIds object = {
  blob: blobZone.outputs.id
  table: tableZone.outputs.id
  queue: queueZone.outputs.id
  namespace: serviceBusZone.outputs.id
  vault: vaultZone.outputs.id
}
