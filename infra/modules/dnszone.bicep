// One private DNS zone, linked to the virtual network so names resolve inside it.

@description('Zone name, e.g. privatelink.blob.core.windows.net.')
param zoneName string

@description('Virtual network the zone is linked to.')
param vnetId string

param tags object = {}

resource zone 'Microsoft.Network/privateDnsZones@2020-06-01' = {
  name: zoneName
  location: 'global'
  tags: tags
}

resource link 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: zone
  name: 'link-${uniqueString(vnetId)}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}

output id string = zone.id
