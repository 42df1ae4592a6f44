// Module loader hook for as-restartable.mjs: peers/as.mjs gets the persistent Provider
// subclass when it imports 'oidc-provider'; every other import resolves as usual.
export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'oidc-provider' && context.parentURL?.endsWith('/peers/as.mjs')) {
    return { url: new URL('./as-restartable-provider.mjs', import.meta.url).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
