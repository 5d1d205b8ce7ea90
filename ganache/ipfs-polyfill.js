// Defines Promise.withResolvers where the Node runtime lacks it (Node < 22): js-ipfs 0.66's
// dependencies call it at start-up. Loaded with NODE_OPTIONS=--require <this file>.
'use strict';
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
    configurable: true,
    writable: true,
  });
}
