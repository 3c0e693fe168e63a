// Package config turns Beacon's custom resources into a validated model.
//
// Parse is the single place where user input becomes trusted data: the
// controller, the speaker and admission all call it, so they agree on what a
// pool holds. Everything here is a pure function over plain data.
package config
