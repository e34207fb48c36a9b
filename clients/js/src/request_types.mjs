// Generated from ddx_offchain.protocol.requests.request_schema(): do not edit by hand.
// Regenerate: .venv/bin/python -m ddx_offchain.cli.request_schema > clients/js/src/request_types.mjs
// (tests/app/test_js_client.py fails when this file and the Python types differ.)
export default {
 "domain": {
  "name": "DDX",
  "version": "1"
 },
 "replayWindowMs": 300000,
 "notForcedFields": [
  "trader",
  "nonce",
  "timestamp"
 ],
 "maxQuantity": "340282366920938463463374607431768211455",
 "maxBatchActions": 50,
 "requests": {
  "PlaceOrder": {
   "typeId": 1,
   "typeString": "PlaceOrder(address trader,bytes32 strategy,bytes32 market,uint8 side,uint8 orderType,uint256 price,uint256 size,bool reduceOnly,uint64 nonce,uint64 timestamp,bytes32 clientOrderId,uint64 expiry)",
   "typeHash": "0xc520fb6b257f6ffd85045820b6516a89832095d6e4944a7096fee8500badefa2",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "side",
     "type": "uint8"
    },
    {
     "name": "orderType",
     "type": "uint8"
    },
    {
     "name": "price",
     "type": "uint256"
    },
    {
     "name": "size",
     "type": "uint256"
    },
    {
     "name": "reduceOnly",
     "type": "bool"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    },
    {
     "name": "clientOrderId",
     "type": "bytes32"
    },
    {
     "name": "expiry",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": true,
   "forceable": true
  },
  "CancelOrder": {
   "typeId": 2,
   "typeString": "CancelOrder(address trader,bytes32 strategy,bytes32 market,bytes32 orderHash,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x508b260e6d7a55bfba8ab0506ce2e5526799d638f0296f4f7c4a2f9574ec5aba",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "orderHash",
     "type": "bytes32"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": true,
   "forceable": true
  },
  "CancelAll": {
   "typeId": 3,
   "typeString": "CancelAll(address trader,bytes32 strategy,bytes32 market,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x4a098e22d7c31ba464b452ac1c455b88e7ac97951d4a80750ec88ecd7e6237c7",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": true,
   "forceable": true
  },
  "ModifyOrder": {
   "typeId": 4,
   "typeString": "ModifyOrder(address trader,bytes32 strategy,bytes32 market,bytes32 orderHash,uint256 price,uint256 size,uint64 nonce,uint64 timestamp)",
   "typeHash": "0xd5747d5675c9cd7912934e0a0ea7d262ba61d1919febbba0812c6edd5e1595b5",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "orderHash",
     "type": "bytes32"
    },
    {
     "name": "price",
     "type": "uint256"
    },
    {
     "name": "size",
     "type": "uint256"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": true,
   "forceable": true
  },
  "WithdrawIntent": {
   "typeId": 5,
   "typeString": "WithdrawIntent(address trader,bytes32 strategy,address token,uint256 amount,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x6c7be24fe0e1417a6ac6008514c3657efac48b3d065a47bf9822baf200cd3760",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "token",
     "type": "address"
    },
    {
     "name": "amount",
     "type": "uint256"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": false,
   "forceable": true
  },
  "CreateStrategy": {
   "typeId": 6,
   "typeString": "CreateStrategy(address trader,bytes32 strategy,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x6a3fb97de3c87dd26c8c919c4d7b5c6e70821ea1e5c14cd15596db5e5e793cdb",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": false,
   "forceable": true
  },
  "Batch": {
   "typeId": 7,
   "typeString": "Batch(address trader,bytes32 strategy,Action[] actions,uint64 nonce,uint64 timestamp,bool atomic)Action(uint8 kind,bytes32 market,uint8 side,uint8 orderType,uint256 price,uint256 size,bool reduceOnly,bytes32 orderHash,bytes32 clientOrderId,uint64 expiry)",
   "typeHash": "0x0b24a24e72fce651b88dd871bf00c36479dc7f8bf950934c8ed6c45833ef9697",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "actions",
     "type": "Action[]"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    },
    {
     "name": "atomic",
     "type": "bool"
    }
   ],
   "referenced": [
    "Action"
   ],
   "agentSignable": true,
   "forceable": false
  },
  "ApproveAgent": {
   "typeId": 8,
   "typeString": "ApproveAgent(address trader,bytes32 strategy,address agent,uint8 scope,uint64 expiry,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x5a391a1605c716332be796ec3ae7e197978365f43a901b10f321fe751aa789f8",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "agent",
     "type": "address"
    },
    {
     "name": "scope",
     "type": "uint8"
    },
    {
     "name": "expiry",
     "type": "uint64"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": false,
   "forceable": true
  },
  "RevokeAgent": {
   "typeId": 9,
   "typeString": "RevokeAgent(address trader,bytes32 strategy,address agent,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x87a97cb1f9e832b449ce5073a90cec95e78ec289966178fd7c2563e655333392",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "agent",
     "type": "address"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": false,
   "forceable": true
  },
  "ScheduleCancel": {
   "typeId": 10,
   "typeString": "ScheduleCancel(address trader,bytes32 strategy,bytes32 market,uint64 time,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x33d32a03304d7a98b2f34042f85dbd4ab29d606dd5fc659f620ba39b86320db4",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "time",
     "type": "uint64"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": true,
   "forceable": false
  },
  "Transfer": {
   "typeId": 11,
   "typeString": "Transfer(address trader,bytes32 strategy,bytes32 toStrategy,address token,uint256 amount,uint64 nonce,uint64 timestamp)",
   "typeHash": "0xfb1b4133bf52cdd5ea5f7de0ec8915839f09f498cd3877de581363f9c2d3f997",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "toStrategy",
     "type": "bytes32"
    },
    {
     "name": "token",
     "type": "address"
    },
    {
     "name": "amount",
     "type": "uint256"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": false,
   "forceable": false
  },
  "PlaceTrigger": {
   "typeId": 12,
   "typeString": "PlaceTrigger(address trader,bytes32 strategy,bytes32 market,uint8 side,uint8 direction,uint256 triggerPrice,uint8 orderType,uint256 price,uint256 size,bool reduceOnly,bool attached,bytes32 group,bytes32 clientOrderId,uint64 nonce,uint64 timestamp)",
   "typeHash": "0xed1d6110ba1727dbe4939f72e35300c93c3cedd7f764a25bea0b0062d92ab5b1",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "side",
     "type": "uint8"
    },
    {
     "name": "direction",
     "type": "uint8"
    },
    {
     "name": "triggerPrice",
     "type": "uint256"
    },
    {
     "name": "orderType",
     "type": "uint8"
    },
    {
     "name": "price",
     "type": "uint256"
    },
    {
     "name": "size",
     "type": "uint256"
    },
    {
     "name": "reduceOnly",
     "type": "bool"
    },
    {
     "name": "attached",
     "type": "bool"
    },
    {
     "name": "group",
     "type": "bytes32"
    },
    {
     "name": "clientOrderId",
     "type": "bytes32"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": true,
   "forceable": false
  },
  "PlaceTwap": {
   "typeId": 13,
   "typeString": "PlaceTwap(address trader,bytes32 strategy,bytes32 market,uint8 side,uint256 size,uint64 duration,uint64 interval,uint256 limitPrice,bool reduceOnly,uint64 nonce,uint64 timestamp)",
   "typeHash": "0x89de656e62ee108d9ba5ac33e69a04bb17a5595aaaaa2022888555d74903a6b1",
   "fields": [
    {
     "name": "trader",
     "type": "address"
    },
    {
     "name": "strategy",
     "type": "bytes32"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "side",
     "type": "uint8"
    },
    {
     "name": "size",
     "type": "uint256"
    },
    {
     "name": "duration",
     "type": "uint64"
    },
    {
     "name": "interval",
     "type": "uint64"
    },
    {
     "name": "limitPrice",
     "type": "uint256"
    },
    {
     "name": "reduceOnly",
     "type": "bool"
    },
    {
     "name": "nonce",
     "type": "uint64"
    },
    {
     "name": "timestamp",
     "type": "uint64"
    }
   ],
   "referenced": [],
   "agentSignable": true,
   "forceable": false
  }
 },
 "structs": {
  "Action": {
   "typeString": "Action(uint8 kind,bytes32 market,uint8 side,uint8 orderType,uint256 price,uint256 size,bool reduceOnly,bytes32 orderHash,bytes32 clientOrderId,uint64 expiry)",
   "fields": [
    {
     "name": "kind",
     "type": "uint8"
    },
    {
     "name": "market",
     "type": "bytes32"
    },
    {
     "name": "side",
     "type": "uint8"
    },
    {
     "name": "orderType",
     "type": "uint8"
    },
    {
     "name": "price",
     "type": "uint256"
    },
    {
     "name": "size",
     "type": "uint256"
    },
    {
     "name": "reduceOnly",
     "type": "bool"
    },
    {
     "name": "orderHash",
     "type": "bytes32"
    },
    {
     "name": "clientOrderId",
     "type": "bytes32"
    },
    {
     "name": "expiry",
     "type": "uint64"
    }
   ]
  }
 },
 "receipt": {
  "typeString": "Receipt(bytes32 requestHash,uint64 requestIndex,uint64 epoch,address sender,uint64 nonce)",
  "typeHash": "0x28c931791859d8f09e7a8492709c148df811ad49ceae96e8b743f0899bf1c2b4",
  "fields": [
   {
    "name": "requestHash",
    "type": "bytes32"
   },
   {
    "name": "requestIndex",
    "type": "uint64"
   },
   {
    "name": "epoch",
    "type": "uint64"
   },
   {
    "name": "sender",
    "type": "address"
   },
   {
    "name": "nonce",
    "type": "uint64"
   }
  ]
 },
 "enums": {
  "Side": {
   "BUY": 0,
   "SELL": 1
  },
  "OrderType": {
   "LIMIT": 0,
   "LIMIT_IOC": 1,
   "POST_ONLY": 2,
   "MARKET": 3,
   "FILL_OR_KILL": 4
  },
  "ActionKind": {
   "PLACE": 0,
   "CANCEL": 1,
   "MODIFY": 2
  },
  "AgentScope": {
   "TRADE": 1
  },
  "Direction": {
   "RISES_TO": 0,
   "FALLS_TO": 1
  }
 }
};
